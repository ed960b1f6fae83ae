/**
 * Reading a YAML config with key=value overrides into a TrainConfig. Every problem names the key, its line
 * in the file, the value, and the closest valid key or option.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { fromSystemError, LmfError } from '../errors.js';
import { closest } from '../util/closest.js';
import { configKeys, configSchema, type TrainConfig } from './schema.js';

/** "key=value" from the command line; the value is read as YAML (numbers, booleans, lists). */
export function parseOverrides(args: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of args) {
    const eq = a.indexOf('=');
    if (eq <= 0)
      throw new LmfError('bad_override', `"${a}" is not key=value`, {
        hint: 'write overrides as key=value, e.g. learning_rate=1e-4',
      });
    out[a.slice(0, eq).replace(/^--/, '')] = parseDocument(a.slice(eq + 1)).toJS();
  }
  return out;
}

export function loadConfig(file: string, overrides: Record<string, unknown> = {}): TrainConfig {
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
  const merged = { ...raw, ...overrides };
  const lineOf = (key: string): number | undefined => {
    const node =
      doc.contents && 'items' in doc.contents
        ? (doc.contents.items as { key: { value: string; range?: [number, number, number] } }[]).find(
            (p) => p.key?.value === key,
          )
        : undefined;
    return node?.key.range ? lines.linePos(node.key.range[0]).line : undefined;
  };
  const parsed = configSchema.safeParse(merged);
  if (parsed.success) return parsed.data;
  const problem = describeIssues(parsed.error.issues, merged)[0];
  throw new LmfError(problem.code, problem.message, {
    file,
    key: problem.key,
    row: lineOf(problem.key),
    hint: problem.hint,
  });
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
        const near = closest(key, configKeys);
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
