/** A command's config: the YAML file and key=value overrides, loaded (and its schema imported) when a command runs. */
import type { TrainConfig } from '../config/schema.js';

export async function loadConfigFrom(file: string, overrides: string[]): Promise<TrainConfig> {
  const { loadConfig, parseOverrides } = await import('../config/load.js');
  return loadConfig(file, parseOverrides(overrides));
}
