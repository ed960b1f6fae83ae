/**
 * Reading a YAML config with key=value overrides into a TrainConfig. Every problem names the key, its line
 * in the file, the value, and the closest valid key or option.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { fromSystemError, LmfError } from '../errors.js';
import { closest } from '../util/closest.js';
import { notice } from '../util/notice.js';
import { foreignKeys, judgeForeignKey } from './llamafactory.js';
import { configKeys, configSchema, configShape, type TrainConfig } from './schema.js';

/** Command-line settings (key, value text) in order; each value is read as YAML (numbers, booleans, lists). */
export function parseSettings(settings: readonly [string, string][]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of settings) out[key] = parseDocument(value).toJS();
  return out;
}

/** "key=value" overrides (the form tests and the board use). */
export function parseOverrides(args: string[]): Record<string, unknown> {
  return parseSettings(
    args.map((a) => {
      const eq = a.indexOf('=');
      if (eq <= 0)
        throw new LmfError('bad_override', `"${a}" is not key=value`, {
          hint: 'write overrides as key=value, e.g. learning_rate=1e-4',
        });
      return [a.slice(0, eq).replace(/^--/, ''), a.slice(eq + 1)];
    }),
  );
}

/** A config from a YAML file (or none: every setting from the command line) and settings over it. */
export function loadConfig(file: string | null, overrides: Record<string, unknown> = {}): TrainConfig {
  if (file === null) return validate({}, overrides, 'the command line', () => undefined);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EISDIR')
      throw new LmfError('config_missing', 'this is a folder, not a YAML config file', {
        file,
        hint: 'name the .yaml file',
      });
    if (code === 'ENOENT') throw new LmfError('config_missing', 'the config file does not exist', { file });
    throw fromSystemError(err) ?? err;
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new LmfError('bad_yaml', `invalid YAML at line ${e.linePos?.[0].line ?? '?'}: ${e.message.split('\n')[0]}`, {
      file,
      row: e.linePos?.[0].line,
    });
  }
  const raw = (doc.toJS() ?? {}) as Record<string, unknown>;
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new LmfError('bad_config', 'the config must be a mapping of key: value', { file });
  const lineOf = (key: string): number | undefined => {
    const node =
      doc.contents && 'items' in doc.contents
        ? (doc.contents.items as { key: { value: string; range?: [number, number, number] } }[]).find(
            (p) => p.key?.value === key,
          )
        : undefined;
    return node?.key.range ? lines.linePos(node.key.range[0]).line : undefined;
  };
  return validate(raw, overrides, file, (key) => (key in overrides ? undefined : lineOf(key)));
}

/** The file's keys with the command line's over them, checked; every problem names the key (and its line). */
function validate(
  raw: Record<string, unknown>,
  overrides: Record<string, unknown>,
  file: string,
  lineOf: (key: string) => number | undefined,
): TrainConfig {
  const merged: Record<string, unknown> = { ...raw, ...overrides };
  const ours = sortKeys(merged, (key, why, value) => {
    const fallback = foreignKeys[key].default;
    throw new LmfError('unsupported_key', `${key}: ${JSON.stringify(value)}: ${why}`, {
      file,
      key,
      row: lineOf(key),
      hint: `remove ${key}${fallback === null ? '' : ` or set it to ${JSON.stringify(fallback)}`}`,
    });
  });
  const parsed = configSchema.safeParse(ours);
  if (parsed.success) return withFp16AsBf16(parsed.data);
  const problem = describeIssues(parsed.error.issues, merged)[0];
  throw new LmfError(problem.code, problem.message, {
    file,
    key: problem.key,
    row: lineOf(problem.key),
    hint: problem.hint,
  });
}

/**
 * The keys the schema reads, with null (Python's None) meaning "unset" wherever the schema has no null; the
 * LLaMA-Factory keys it does not read are dropped, after a notice or a refusal (`refuse` throws) when they are
 * set to something other than their default. Unknown keys stay, for the schema to name.
 */
function sortKeys(
  merged: Record<string, unknown>,
  refuse: (key: string, why: string, value: unknown) => never,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(merged)) {
    if (key in configShape) {
      const field = configShape[key as keyof typeof configShape];
      if (value === null && !field.safeParse(null).success) continue;
      out[key] = value;
      continue;
    }
    const verdict = judgeForeignKey(key, value);
    if (!verdict) out[key] = value;
    else if (verdict.kind === 'notice') notice(verdict.line);
    else if (verdict.kind === 'refuse') refuse(key, verdict.why, value);
  }
  return out;
}

/** fp16 on this CPU engine: the matmuls run in bf16 (same memory, wider range), said once. */
function withFp16AsBf16(c: TrainConfig): TrainConfig {
  if (!c.fp16 || c.bf16) return c;
  notice('fp16: this CPU engine computes half precision as bf16 (bf16: true)');
  return { ...c, bf16: true };
}

export interface ConfigProblem {
  code: 'unknown_key' | 'bad_value';
  key: string;
  message: string;
  hint?: string;
}

/** The schema's complaints about a raw config, in words: the key, what is wrong, the closest valid key or option. */
export function describeIssues(issues: z.core.$ZodIssue[], raw: Record<string, unknown>): ConfigProblem[] {
  return issues.flatMap((issue): ConfigProblem[] => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => {
        const near = closest(key, [...configKeys, ...Object.keys(foreignKeys)]);
        return {
          code: 'unknown_key',
          key,
          message: `unknown key "${key}"`,
          hint: near ? `did you mean "${near}"?` : 'see examples/ for the keys LMFactory reads',
        };
      });
    }
    const key = String(issue.path[0]);
    const value = raw[key];
    let hint: string | undefined;
    if (issue.code === 'invalid_value' && 'values' in issue) {
      const options = (issue.values as unknown[]).map(String);
      const near = typeof value === 'string' ? closest(value, options) : null;
      hint = `${near ? `did you mean "${near}"? ` : ''}valid: ${options.join(', ')}`;
    }
    return [
      {
        code: 'bad_value',
        key,
        message: `${key}: ${value === undefined ? 'is required' : `${JSON.stringify(value)} is not valid (${issue.message})`}`,
        hint,
      },
    ];
  });
}
