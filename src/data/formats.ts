/**
 * Dataset rows -> aligned examples, for the alpaca, sharegpt and openai formats (SFT, preference and KTO
 * variants). A row that cannot be converted yields a RowProblem (file:row: what is wrong) instead of an
 * example; a column the rows do not have is an error for the whole dataset, with the closest name.
 */
import { LmfError } from '../errors.js';
import { closest } from '../util/closest.js';
import type { DatasetAttr } from './dataset-info.js';
import type { Row } from './loaders.js';
import { isAssistantSide, isUserSide, type AlignedExample, type Message, type Role } from './messages.js';

export interface RowProblem {
  file: string;
  row: number;
  message: string;
}

export type Converted = { example: AlignedExample } | { problem: RowProblem };

export type StageKind = 'pt' | 'sft' | 'pairwise' | 'kto';

/** Columns a stage reads, by format; the others (system, tools, history …) are read when present. */
const requiredColumns: Record<StageKind, { alpaca: string[]; sharegpt: string[] }> = {
  pt: { alpaca: ['prompt'], sharegpt: ['messages'] },
  sft: { alpaca: ['prompt', 'response'], sharegpt: ['messages'] },
  pairwise: { alpaca: ['prompt', 'chosen', 'rejected'], sharegpt: ['messages', 'chosen', 'rejected'] },
  kto: { alpaca: ['prompt', 'response', 'kto_tag'], sharegpt: ['messages', 'kto_tag'] },
};

const columnDefaults: Record<string, string> = { chosen: 'chosen', rejected: 'rejected', kto_tag: 'kto_tag' };

/**
 * Checks that the columns a stage reads exist in the rows (judged on the first 100), and that every
 * column the entry names explicitly does too; a missing one is reported with the closest name.
 */
export function checkColumns(attr: DatasetAttr, rows: Row[], stage: StageKind): void {
  if (!rows.length) return;
  const present = new Set(rows.slice(0, 100).flatMap((r) => Object.keys(r.values)));
  const cols = attr.columns as Record<string, string | undefined>;
  const required = requiredColumns[stage][attr.formatting === 'alpaca' ? 'alpaca' : 'sharegpt'];
  for (const key of required) {
    const column = cols[key] ?? columnDefaults[key];
    if (!column || present.has(column)) continue;
    const near = closest(column, [...present]);
    throw new LmfError('unknown_column', `column "${column}" (for ${key}) is not in the data`, {
      file: rows[0].file,
      key: `${attr.name}.columns.${key}`,
      hint: `${near ? `did you mean "${near}"? ` : ''}the rows have: ${[...present].join(', ')}`,
    });
  }
}

function text(v: unknown): string | null {
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : null;
}

function ktoTag(v: unknown): boolean | null {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 1 || v === '1') return true;
  if (v === 'false' || v === 0 || v === '0') return false;
  return null;
}

class Problem extends Error {}

function need(cond: boolean, message: string): asserts cond {
  if (!cond) throw new Problem(message);
}

function convertAlpaca(attr: DatasetAttr, r: Row, stage: StageKind): AlignedExample {
  const c = attr.columns;
  const v = r.values;
  const instruction = text(v[c.prompt!]);
  const input = c.query ? text(v[c.query]) : '';
  need(instruction !== null && input !== null, `"${c.prompt}" and "${c.query}" must be text`);
  const prompt: Message[] = [];
  if (c.history && v[c.history] !== undefined && v[c.history] !== null) {
    const history = v[c.history];
    need(Array.isArray(history), `"${c.history}" must be a list of [question, answer] pairs`);
    history.forEach((pair, i) => {
      need(
        Array.isArray(pair) && pair.length === 2 && typeof pair[0] === 'string' && typeof pair[1] === 'string',
        `history item ${i + 1} must be a [question, answer] pair of texts`,
      );
      prompt.push({ role: 'user', content: pair[0] }, { role: 'assistant', content: pair[1] });
    });
  }
  const query = [instruction, input].filter((s) => s).join('\n');
  need(query.length > 0 || stage === 'pt', `"${c.prompt}" is empty`);
  prompt.push({ role: 'user', content: query });
  const system = c.system ? (text(v[c.system]) ?? '') : '';
  const tools = c.tools ? (text(v[c.tools]) ?? '') : '';
  const source = { file: r.file, row: r.row };
  if (stage === 'pt') return { prompt, response: [], system, tools, source };
  if (stage === 'pairwise') {
    const chosen = text(v[c.chosen ?? 'chosen']);
    const rejected = text(v[c.rejected ?? 'rejected']);
    need(!!chosen && !!rejected, 'chosen and rejected answers must both be non-empty texts');
    return {
      prompt,
      response: [
        { role: 'assistant', content: chosen },
        { role: 'assistant', content: rejected },
      ],
      system,
      tools,
      source,
    };
  }
  const response = text(v[c.response!]);
  need(!!response, `empty response ("${c.response}")`);
  const example: AlignedExample = {
    prompt,
    response: [{ role: 'assistant', content: response }],
    system,
    tools,
    source,
  };
  if (stage === 'kto') {
    const tag = ktoTag(v[c.kto_tag ?? 'kto_tag']);
    need(tag !== null, `"${c.kto_tag ?? 'kto_tag'}" must be true or false`);
    example.ktoTag = tag;
  }
  return example;
}

function roleMap(attr: DatasetAttr): Map<string, Role> {
  const t = attr.tags;
  return new Map<string, Role>([
    [t.user_tag, 'user'],
    [t.assistant_tag, 'assistant'],
    [t.observation_tag, 'observation'],
    [t.function_tag, 'function'],
    [t.system_tag, 'system'],
  ]);
}

function toMessage(attr: DatasetAttr, roles: Map<string, Role>, m: unknown, where: string): Message {
  need(
    !!m && typeof m === 'object',
    `${where} must be an object with "${attr.tags.role_tag}" and "${attr.tags.content_tag}"`,
  );
  const obj = m as Record<string, unknown>;
  const tag = obj[attr.tags.role_tag];
  const role = typeof tag === 'string' ? roles.get(tag) : undefined;
  need(role !== undefined, `${where} has role ${JSON.stringify(tag)}; expected one of ${[...roles.keys()].join(', ')}`);
  if (attr.formatting === 'openai' && role === 'assistant' && Array.isArray(obj.tool_calls) && obj.tool_calls.length) {
    const calls = (obj.tool_calls as { function?: { name?: string; arguments?: unknown } }[]).map((c) => ({
      name: c.function?.name,
      arguments: typeof c.function?.arguments === 'string' ? JSON.parse(c.function.arguments) : c.function?.arguments,
    }));
    return { role: 'function', content: JSON.stringify(calls) };
  }
  const content = obj[attr.tags.content_tag];
  need(typeof content === 'string', `${where} has no text in "${attr.tags.content_tag}"`);
  return { role, content };
}

function convertShareGpt(attr: DatasetAttr, r: Row, stage: StageKind): AlignedExample {
  const c = attr.columns;
  const v = r.values;
  const raw = v[c.messages!];
  need(Array.isArray(raw) && raw.length > 0, `"${c.messages}" must be a non-empty list of messages`);
  const roles = roleMap(attr);
  let messages = raw.map((m, i) => toMessage(attr, roles, m, `message ${i + 1}`));
  // openai: consecutive tool results form one observation
  messages = messages.reduce<Message[]>((acc, m) => {
    const prev = acc[acc.length - 1];
    if (attr.formatting === 'openai' && prev && prev.role === 'observation' && m.role === 'observation') {
      prev.content += `\n</tool_response>\n<tool_response>\n${m.content}`;
    } else acc.push({ ...m });
    return acc;
  }, []);
  let system = c.system ? (text(v[c.system]) ?? '') : '';
  if (messages[0].role === 'system') {
    system = messages[0].content;
    messages = messages.slice(1);
  }
  messages.forEach((m, i) => {
    const ok = i % 2 === 0 ? isUserSide(m.role) : isAssistantSide(m.role);
    need(
      ok,
      `turn ${i + 1} is a ${m.role} turn where ${i % 2 === 0 ? 'a user or observation' : 'an assistant or function'} turn belongs (turns must alternate)`,
    );
  });
  const tools = c.tools ? (text(v[c.tools]) ?? '') : '';
  const source = { file: r.file, row: r.row };
  if (stage === 'pt') return { prompt: messages, response: [], system, tools, source };
  if (stage === 'pairwise') {
    need(messages.length % 2 === 1, 'a preference conversation must end with a user turn');
    const chosen = toMessage(attr, roles, v[c.chosen ?? 'chosen'], 'chosen');
    const rejected = toMessage(attr, roles, v[c.rejected ?? 'rejected'], 'rejected');
    need(isAssistantSide(chosen.role) && isAssistantSide(rejected.role), 'chosen and rejected must be assistant turns');
    need(!!chosen.content && !!rejected.content, 'chosen and rejected answers must be non-empty');
    return { prompt: messages, response: [chosen, rejected], system, tools, source };
  }
  need(messages.length % 2 === 0, 'the conversation must end with an assistant turn');
  const last = messages[messages.length - 1];
  need(last.content.length > 0, 'empty response (the last assistant turn)');
  const example: AlignedExample = { prompt: messages.slice(0, -1), response: [last], system, tools, source };
  if (stage === 'kto') {
    const tag = ktoTag(v[c.kto_tag ?? 'kto_tag']);
    need(tag !== null, `"${c.kto_tag ?? 'kto_tag'}" must be true or false`);
    example.ktoTag = tag;
  }
  return example;
}

export function convertRow(attr: DatasetAttr, r: Row, stage: StageKind): Converted {
  try {
    return { example: attr.formatting === 'alpaca' ? convertAlpaca(attr, r, stage) : convertShareGpt(attr, r, stage) };
  } catch (err) {
    if (err instanceof Problem || err instanceof SyntaxError)
      return { problem: { file: r.file, row: r.row, message: err.message } };
    throw err;
  }
}
