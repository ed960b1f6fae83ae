/**
 * Reading dataset rows from json (an array, or JSON Lines in a .json file), jsonl, csv, parquet and txt
 * files, or a folder of them. Every problem names the file, and the line and column where it is.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { parquetReadObjects } from 'hyparquet';
import { LmfError } from '../errors.js';
import { pushAll } from '../util/arrays.js';

export interface Row {
  values: Record<string, unknown>;
  file: string;
  /** 1-based: array index for JSON arrays, line for JSON Lines, csv and txt, row for parquet */
  row: number;
}

const extensions = ['json', 'jsonl', 'csv', 'parquet', 'txt'] as const;
type Extension = (typeof extensions)[number];

function extensionOf(file: string): Extension {
  const ext = path.extname(file).slice(1).toLowerCase() as Extension;
  if (!extensions.includes(ext)) {
    throw new LmfError('bad_file_type', `files of type .${ext} cannot be read`, {
      file,
      hint: `use ${extensions.map((e) => `.${e}`).join(', ')}`,
    });
  }
  return ext;
}

/** Line and column (1-based) of a character offset. */
export function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1,
    last = -1;
  for (let i = 0; i < offset && i < text.length; i++)
    if (text.charCodeAt(i) === 10) {
      line++;
      last = i;
    }
  return { line, column: offset - last };
}

/** Decodes UTF-8 strictly: a byte sequence that is not UTF-8 is reported with its line. */
function readUtf8(file: string): string {
  const bytes = readFileSync(file);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes).replace(/^\uFEFF/, '');
  } catch {
    let line = 1,
      i = 0;
    while (i < bytes.length) {
      const b = bytes[i];
      const len = b < 0x80 ? 1 : b >> 5 === 6 ? 2 : b >> 4 === 14 ? 3 : b >> 3 === 30 ? 4 : 0;
      let ok = len > 0 && i + len <= bytes.length;
      for (let k = 1; ok && k < len; k++) ok = bytes[i + k] >> 6 === 2;
      if (!ok) break;
      if (b === 10) line++;
      i += len;
    }
    throw new LmfError('bad_encoding', `byte ${i} (line ${line}) is not valid UTF-8`, {
      file,
      row: line,
      hint: 'save the file as UTF-8',
    });
  }
}

function jsonError(file: string, text: string, err: Error, lineOffset = 0): LmfError {
  const m = /position (\d+)/.exec(err.message);
  const at = m ? lineAndColumn(text, Number(m[1])) : null;
  const where = at ? `line ${at.line + lineOffset}, column ${at.column}` : `line ${lineOffset + 1}`;
  return new LmfError(
    'bad_json',
    `invalid JSON at ${where}: ${err.message.replace(/ in JSON at position \d+.*$/, '')}`,
    {
      file,
      row: at ? at.line + lineOffset : lineOffset + 1,
      hint: 'fix the JSON (a trailing comma or a missing quote is the usual cause)',
    },
  );
}

function asObject(v: unknown, file: string, row: number): Record<string, unknown> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) {
    throw new LmfError('bad_row', `a row must be a JSON object, got ${Array.isArray(v) ? 'an array' : typeof v}`, {
      file,
      row,
    });
  }
  return v as Record<string, unknown>;
}

function readJsonLines(file: string, text: string): Row[] {
  const rows: Row[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw jsonError(file, line, err as Error, i);
    }
    rows.push({ values: asObject(v, file, i + 1), file, row: i + 1 });
  });
  return rows;
}

async function readOne(file: string): Promise<Row[]> {
  const ext = extensionOf(file);
  if (ext === 'parquet') {
    const buf = readFileSync(file);
    let objects: Record<string, unknown>[];
    try {
      objects = await parquetReadObjects({
        file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer,
      });
    } catch (err) {
      throw new LmfError('bad_parquet', `cannot read the parquet file (${(err as Error).message})`, { file });
    }
    return objects.map((values, i) => ({ values, file, row: i + 1 }));
  }
  const text = readUtf8(file);
  if (ext === 'txt') {
    return text
      .split('\n')
      .map((line, i) => ({ values: { text: line }, file, row: i + 1 }))
      .filter((r) => (r.values.text as string).trim());
  }
  if (ext === 'csv') {
    try {
      const records = parseCsv(text, { columns: true, skip_empty_lines: true, info: true }) as {
        record: Record<string, unknown>;
        info: { lines: number };
      }[];
      return records.map((r) => ({ values: r.record, file, row: r.info.lines }));
    } catch (err) {
      const e = err as Error & { lines?: number };
      throw new LmfError('bad_csv', `invalid CSV: ${e.message}`, { file, row: e.lines });
    }
  }
  if (ext === 'jsonl') return readJsonLines(file, text);
  // .json: an array of objects, or (as datasets accepts) JSON Lines
  const trimmed = text.trimStart();
  if (!trimmed.startsWith('[')) return readJsonLines(file, text);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw jsonError(file, text, err as Error);
  }
  return (parsed as unknown[]).map((v, i) => ({ values: asObject(v, file, i + 1), file, row: i + 1 }));
}

/** Rows of a file, or of every file in a folder (all of one type, in name order). */
export async function loadRows(target: string): Promise<Row[]> {
  let stat;
  try {
    stat = statSync(target);
  } catch {
    throw new LmfError('file_missing', 'the dataset file does not exist', {
      file: target,
      hint: 'check file_name in dataset_info.json (it is relative to dataset_dir)',
    });
  }
  if (!stat.isDirectory()) return readOne(target);
  const files = readdirSync(target)
    .filter((f) => !f.startsWith('.'))
    .sort()
    .map((f) => path.join(target, f));
  const types = new Set(files.map(extensionOf));
  if (types.size > 1)
    throw new LmfError('mixed_files', `the folder mixes file types (${[...types].join(', ')})`, {
      file: target,
      hint: 'keep one type per dataset folder',
    });
  const rows: Row[] = [];
  for (const f of files) pushAll(rows, await readOne(f));
  return rows;
}
