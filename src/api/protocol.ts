/**
 * OpenAI's chat-completions wire format: the request schema (validated with zod; unknown fields are
 * ignored as OpenAI's server ignores them), the conversion into our messages, and the error body.
 */
import { z } from 'zod';
import type { Message } from '../data/messages.js';
import type { FunctionCall } from '../data/templates/tools.js';

const text = z.union([
  z.string(),
  z
    .array(z.object({ type: z.literal('text'), text: z.string() }))
    .transform((parts) => parts.map((p) => p.text).join('')),
]);

const toolCall = z.object({
  id: z.string().optional(),
  type: z.literal('function').default('function'),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

const message = z.discriminatedUnion('role', [
  z.object({ role: z.enum(['system', 'developer']), content: text }),
  z.object({ role: z.literal('user'), content: text }),
  z.object({ role: z.literal('assistant'), content: text.nullish(), tool_calls: z.array(toolCall).optional() }),
  z.object({ role: z.literal('tool'), content: text, tool_call_id: z.string().optional() }),
]);

export const chatRequestSchema = z.object({
  model: z.string().optional(),
  messages: z.array(message).min(1).max(1000),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  max_tokens: z.number().int().positive().optional(),
  max_completion_tokens: z.number().int().positive().optional(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).optional(),
  stream: z.boolean().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  n: z.literal(1).optional(),
  seed: z.number().int().optional(),
  tools: z
    .array(z.object({ type: z.literal('function'), function: z.object({ name: z.string() }).loose() }))
    .optional(),
  tool_choice: z.unknown().optional(),
  presence_penalty: z.number().optional(),
  frequency_penalty: z.number().optional(),
});

export type ChatCompletionRequest = z.infer<typeof chatRequestSchema>;

export interface Conversation {
  system?: string;
  messages: Message[];
  tools?: string;
}

export class ProtocolError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type = status === 401
      ? 'invalid_request_error'
      : status === 429
        ? 'rate_limit_error'
        : status >= 500
          ? 'server_error'
          : 'invalid_request_error',
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** OpenAI messages → system prompt + our turns (assistant tool calls become function turns, tool results observations). */
export function toConversation(r: ChatCompletionRequest): Conversation {
  let system: string | undefined;
  const messages: Message[] = [];
  r.messages.forEach((m, i) => {
    switch (m.role) {
      case 'system':
      case 'developer':
        if (i !== 0) throw new ProtocolError(400, 'a system message may only come first', `messages[${i}].role`);
        system = m.content;
        return;
      case 'user':
        messages.push({ role: 'user', content: m.content });
        return;
      case 'assistant':
        if (m.tool_calls?.length) {
          const calls = m.tool_calls.map((c, k) => ({
            name: c.function.name,
            arguments: parseArguments(c.function.arguments, `messages[${i}].tool_calls[${k}].function.arguments`),
          }));
          messages.push({ role: 'function', content: JSON.stringify(calls) });
        } else {
          messages.push({ role: 'assistant', content: m.content ?? '' });
        }
        return;
      case 'tool':
        messages.push({ role: 'observation', content: m.content });
    }
  });
  if (
    !messages.length ||
    (messages[messages.length - 1].role !== 'user' && messages[messages.length - 1].role !== 'observation')
  ) {
    throw new ProtocolError(400, 'the last message must be from the user or a tool', 'messages');
  }
  messages.forEach((m, i) => {
    const userSide = m.role === 'user' || m.role === 'observation';
    if (userSide !== (i % 2 === 0))
      throw new ProtocolError(400, 'user (or tool) and assistant messages must alternate', `messages[${i}]`);
  });
  return { system, messages, tools: r.tools?.length ? JSON.stringify(r.tools) : undefined };
}

function parseArguments(json: string, param: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    throw new ProtocolError(400, 'tool call arguments must be a JSON string', param);
  }
}

export function toolCallsBody(
  calls: FunctionCall[],
  idPrefix: string,
): { id: string; type: 'function'; function: { name: string; arguments: string } }[] {
  return calls.map((c, i) => ({
    id: `call_${idPrefix}_${i}`,
    type: 'function',
    function: { name: c.name, arguments: JSON.stringify(c.arguments) },
  }));
}
