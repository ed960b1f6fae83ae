/**
 * A command's settings from its command line, LLaMA-Factory's way: an optional YAML file first, then any mix
 * of key=value and --key value (a bare --flag is true; --flag false works); later settings win over earlier
 * ones and over the file. Loaded (and the schema imported) when a command runs.
 */
import type { TrainConfig } from '../config/schema.js';
import { LmfError } from '../errors.js';

export interface ConfigArgs {
  /** the YAML file, or null when every setting is on the command line */
  file: string | null;
  /** key → value text, in command-line order */
  settings: [string, string][];
}

export function splitConfigArgs(args: readonly string[]): ConfigArgs {
  let i = 0;
  const first = args[0];
  const file = first !== undefined && !first.startsWith('-') && !first.includes('=') ? first : null;
  if (file !== null) i = 1;
  const settings: [string, string][] = [];
  for (; i < args.length; i++) {
    const a = args[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 2) {
        settings.push([a.slice(2, eq), a.slice(eq + 1)]);
      } else {
        const next = args[i + 1];
        const bare = next === undefined || next.startsWith('--');
        settings.push([a.slice(2), bare ? 'true' : next]);
        if (!bare) i++;
      }
      continue;
    }
    const eq = a.indexOf('=');
    if (eq <= 0) {
      throw new LmfError('bad_override', `"${a}" is neither key=value nor --key value`, {
        hint:
          file === null && i === 0
            ? 'give the YAML file first, then settings such as learning_rate=1e-4 or --learning_rate 1e-4'
            : 'write settings as key=value or --key value, e.g. learning_rate=1e-4',
      });
    }
    settings.push([a.slice(0, eq), a.slice(eq + 1)]);
  }
  return { file, settings };
}

export async function loadConfigFrom(args: readonly string[]): Promise<TrainConfig> {
  const [{ loadConfig, parseSettings }, { resolveHubPath }] = await Promise.all([
    import('../config/load.js'),
    import('../io/hub-download.js'),
  ]);
  const { file, settings } = splitConfigArgs(args);
  const c = loadConfig(file, parseSettings(settings));
  // Hub ids (org/name) become the cached snapshot's folder, as huggingface_hub lays it out (downloaded if absent)
  const local = (id: string) => resolveHubPath(id, { revision: c.model_revision });
  return {
    ...c,
    model_name_or_path: await local(c.model_name_or_path),
    adapter_name_or_path: c.adapter_name_or_path && (await Promise.all(c.adapter_name_or_path.map(local))),
    ref_model: c.ref_model === undefined ? undefined : await local(c.ref_model),
  };
}

/** The help line of a command's settings argument. */
export function settingsHelp(file: string): string {
  return `${file}, then key=value or --key value settings (or only settings, no file)`;
}
