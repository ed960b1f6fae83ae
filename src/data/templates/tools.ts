/**
 * How templates put tool schemas into the system prompt and function calls into assistant turns
 * (LLaMA-Factory's tool formats: "default" and "qwen"; its "qwen3_5" XML call syntax is named and refused).
 */
import { LmfError } from '../../errors.js';
import { pyJsonDumps } from '../pyjson.js';

export type ToolFormat = 'default' | 'qwen' | 'qwen3_5';

export interface FunctionCall {
  name: string;
  arguments: unknown;
}

interface ToolSchema {
  name?: string;
  description?: string;
  parameters?: {
    properties?: Record<string, { type?: string; description?: string; enum?: string[]; items?: { type?: string } }>;
    required?: string[];
  };
}

/** Parses the tools column: a JSON string or an array of schemas (OpenAI-style or bare). */
export function parseTools(tools: string): Record<string, unknown>[] {
  if (!tools) return [];
  try {
    const parsed = JSON.parse(tools) as unknown;
    return Array.isArray(parsed) ? (parsed as Record<string, unknown>[]) : [parsed as Record<string, unknown>];
  } catch (err) {
    throw new LmfError('bad_tools', `the tools column is not valid JSON (${(err as Error).message})`);
  }
}

/** A function turn's content: one call {"name", "arguments"} or a list of them. */
export function parseFunctionCalls(content: string): FunctionCall[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch (err) {
    throw new LmfError('bad_function_call', `a function_call turn is not valid JSON (${(err as Error).message})`, {
      hint: 'write it as {"name": "...", "arguments": {...}} or a list of such objects',
    });
  }
  const calls = Array.isArray(parsed) ? parsed : [parsed];
  return calls.map((c) => {
    const call = c as { name?: unknown; arguments?: unknown };
    if (typeof call.name !== 'string') {
      throw new LmfError('bad_function_call', 'a function call has no "name"', {
        hint: 'write it as {"name": "...", "arguments": {...}}',
      });
    }
    return { name: call.name, arguments: call.arguments ?? {} };
  });
}

function unwrap(tool: Record<string, unknown>): ToolSchema {
  return (tool.type === 'function' && tool.function ? tool.function : tool) as ToolSchema;
}

/** Qwen3.5's tool syntax is not rendered here: data with tools stops rather than train on another format. */
function refuseQwen35(): never {
  throw new LmfError('unsupported_tool_format', "the qwen3_5 template's tool-call format is not implemented", {
    hint: 'train tool-calling data for Qwen3.5 with LLaMA-Factory, or leave the tools column out',
  });
}

/** Text appended to the system prompt that describes the tools. */
export function formatTools(format: ToolFormat, tools: Record<string, unknown>[]): string {
  if (format === 'qwen3_5') refuseQwen35();
  if (format === 'qwen') {
    const text = tools
      .map((t) => `\n${pyJsonDumps(t.type === 'function' ? t : { type: 'function', function: t })}`)
      .join('');
    return (
      '\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' +
      `You are provided with function signatures within <tools></tools> XML tags:\n<tools>${text}` +
      '\n</tools>\n\nFor each function call, return a json object with function name and arguments within ' +
      '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    );
  }
  let toolText = '';
  const names: string[] = [];
  for (const raw of tools) {
    const tool = unwrap(raw);
    let params = '';
    for (const [name, p] of Object.entries(tool.parameters?.properties ?? {})) {
      const required = tool.parameters?.required?.includes(name) ? ', required' : '';
      const choices = p.enum?.length ? `, should be one of [${p.enum.join(', ')}]` : '';
      const items = p.items?.type ? `, where each item should be ${p.items.type}` : '';
      params += `  - ${name} (${p.type ?? ''}${required}): ${p.description ?? ''}${choices}${items}\n`;
    }
    toolText += `> Tool Name: ${tool.name}\nTool Description: ${tool.description ?? ''}\nTool Args:\n${params}\n`;
    names.push(tool.name ?? '');
  }
  return (
    `You have access to the following tools:\n${toolText}Use the following format if using a tool:\n\`\`\`\n` +
    `Action: tool name (one of [${names.join(', ')}]).\nAction Input: the input to the tool, in a JSON format representing the kwargs ` +
    '(e.g. ```{"input": "hello world", "num_beams": 5}```).\n```\n'
  );
}

/** The text of an assistant turn that calls functions. */
export function formatCalls(format: ToolFormat, calls: FunctionCall[]): string {
  if (format === 'qwen3_5') refuseQwen35();
  if (format === 'qwen') {
    return calls
      .map((c) => `<tool_call>\n${pyJsonDumps({ name: c.name, arguments: c.arguments })}\n</tool_call>`)
      .join('\n');
  }
  return calls.map((c) => `Action: ${c.name}\nAction Input: ${pyJsonDumps(c.arguments)}`).join('\n');
}

/**
 * The function calls in a generated answer, or null when it calls none (the inverse of formatCalls, as
 * LLaMA-Factory's extractors: "Action: name / Action Input: {json}" blocks, or <tool_call> JSON blocks).
 * A call whose arguments are not valid JSON means the answer is plain text.
 */
export function extractCalls(format: ToolFormat, text: string): FunctionCall[] | null {
  if (format === 'qwen3_5') return null;
  const calls: FunctionCall[] = [];
  if (format === 'qwen') {
    for (const m of text.matchAll(/<tool_call>\s*([\s\S]*?)\s*<\/tool_call>/g)) {
      try {
        const call = JSON.parse(m[1]) as { name?: unknown; arguments?: unknown };
        if (typeof call.name !== 'string') return null;
        calls.push({ name: call.name, arguments: call.arguments ?? {} });
      } catch {
        return null;
      }
    }
  } else {
    for (const m of text.matchAll(/Action:\s*([^\n]+?)\s*\nAction Input:\s*([\s\S]*?)(?=\nAction:|$)/g)) {
      try {
        calls.push({ name: m[1].trim(), arguments: JSON.parse(m[2].trim().replace(/^```(?:json)?|```$/g, '')) });
      } catch {
        return null;
      }
    }
  }
  return calls.length ? calls : null;
}
