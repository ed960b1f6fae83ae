/**
 * The OpenAI-compatible HTTP server of `lmf api`: GET /v1/models and POST /v1/chat/completions (plain or
 * streamed as server-sent events), with tool calls through the template's function format. Every error is
 * OpenAI's error JSON with the matching status; requests wait in the engine's bounded queue (429 when it is
 * full); a client that goes away cancels its generation.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { extractCalls } from '../data/templates/tools.js';
import { GenerationEngine, QueueFullError, type Completion } from '../infer/generate.js';
import { chatRequest, type InferenceModel } from '../infer/load.js';
import { checkPromptLength } from '../infer/prompt-length.js';
import type { GenerationSettings } from '../infer/settings.js';
import {
  chatRequestSchema,
  ProtocolError,
  toConversation,
  toolCallsBody,
  type ChatCompletionRequest,
} from './protocol.js';

export interface ApiOptions {
  /** Bearer token required on every request, when set */
  apiKey?: string;
  /** the id /v1/models lists and responses carry */
  modelName: string;
  settings: GenerationSettings;
  defaultSystem?: string;
  /** sequences decoded together, and requests allowed to wait beyond them */
  maxActive: number;
  maxQueued: number;
  /** largest request body in bytes */
  bodyLimit?: number;
}

type Sampled = Pick<ChatCompletionRequest, 'temperature' | 'top_p' | 'max_tokens' | 'max_completion_tokens'>;

function requestSettings(base: GenerationSettings, r: Sampled): GenerationSettings {
  const s = { ...base };
  if (r.temperature !== undefined) {
    s.temperature = r.temperature;
    s.doSample = r.temperature > 0;
  }
  if (r.top_p !== undefined) s.topP = r.top_p;
  const max = r.max_completion_tokens ?? r.max_tokens;
  if (max !== undefined) s.maxNewTokens = max;
  return s;
}

function sameKey(given: string, expected: string): boolean {
  const a = Buffer.from(given),
    b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function buildApiServer(m: InferenceModel, o: ApiOptions): FastifyInstance {
  const app = Fastify({ bodyLimit: o.bodyLimit ?? 4 * 1024 * 1024 });
  const engine = new GenerationEngine(m.model, m.tokenizer, { maxActive: o.maxActive, maxQueued: o.maxQueued });
  const created = Math.floor(Date.now() / 1000);

  app.addHook('onRequest', async (req) => {
    if (!o.apiKey) return;
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7) : '';
    if (!sameKey(token, o.apiKey)) throw new ProtocolError(401, 'Incorrect API key provided.', null, 'invalid_api_key');
  });

  app.setErrorHandler((err: FastifyError | ProtocolError | QueueFullError, _req, reply) => {
    if (err instanceof QueueFullError) {
      reply.header('retry-after', String(err.retryAfterSeconds));
      return reply
        .status(429)
        .send(
          new ProtocolError(
            429,
            'The server is busy: too many requests are waiting. Retry later.',
            null,
            'rate_limit_exceeded',
          ).body(),
        );
    }
    if (err instanceof ProtocolError) return reply.status(err.status).send(err.body());
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) app.log.error(err);
    return reply
      .status(status)
      .send(
        new ProtocolError(
          status,
          status === 500 ? 'The server had an error while processing the request.' : err.message,
        ).body(),
      );
  });

  app.setNotFoundHandler((req, reply) =>
    reply
      .status(404)
      .send(new ProtocolError(404, `Unknown request URL: ${req.method} ${req.url}.`, null, 'unknown_url').body()),
  );

  // liveness and load, for monitors and orchestrators
  app.get('/health', async () => ({ status: 'ok', ...engine.load }));

  app.get('/v1/models', async () => ({
    object: 'list',
    data: [{ id: o.modelName, object: 'model', created, owned_by: 'lmfactory' }],
  }));

  app.post('/v1/chat/completions', async (req, reply) => {
    const parsed = chatRequestSchema.safeParse(req.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ProtocolError(
        400,
        `Invalid request: ${issue.message} at ${issue.path.join('.') || 'body'}.`,
        issue.path.join('.') || null,
        'invalid_request',
      );
    }
    const body = parsed.data;
    const conv = toConversation(body);
    const stop = typeof body.stop === 'string' ? [body.stop] : body.stop;
    const limit = m.model.config.maxPositions;
    const system = conv.system ?? o.defaultSystem;
    const verdict = await checkPromptLength(
      m.tokenizer,
      [system ?? '', conv.tools ?? '', ...conv.messages.map((x) => x.content)],
      limit,
    );
    if (!verdict.ok) {
      throw new ProtocolError(
        400,
        `This model's maximum context length is ${limit} tokens; the messages take at least ${verdict.atLeast}.`,
        'messages',
        'context_length_exceeded',
      );
    }
    const prompted = chatRequest(m, conv.messages, {
      system,
      tools: conv.tools,
      settings: requestSettings(o.settings, body),
      stop,
      seed: body.seed,
    });
    const room = limit - prompted.prompt.length;
    if (room <= 0) {
      throw new ProtocolError(
        400,
        `This model's maximum context length is ${limit} tokens; the messages take ${prompted.prompt.length}.`,
        'messages',
        'context_length_exceeded',
      );
    }
    // OpenAI's rule: an explicit completion length that does not fit is refused; the default one is clamped
    const asked = body.max_completion_tokens ?? body.max_tokens;
    if (asked !== undefined && asked > room) {
      throw new ProtocolError(
        400,
        `This model's maximum context length is ${limit} tokens. However, you requested ${prompted.prompt.length + asked} tokens (${prompted.prompt.length} in the messages, ${asked} in the completion). Please reduce the length of the messages or completion.`,
        body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens',
        'context_length_exceeded',
      );
    }
    const request = { ...prompted, maxNewTokens: Math.min(prompted.maxNewTokens, room) };
    const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
    const cancel = new AbortController();
    // the response's socket closing before we finished means the client went away
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) cancel.abort();
    });
    const calls = (c: Completion) => (conv.tools ? extractCalls(m.template.toolFormat, c.text) : null);
    const usage = (c: Completion) => ({
      prompt_tokens: c.promptTokens,
      completion_tokens: c.ids.length,
      total_tokens: c.promptTokens + c.ids.length,
    });

    if (!body.stream) {
      const c = await engine.submit(request, undefined, cancel.signal);
      const toolCalls = calls(c);
      return {
        id,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: o.modelName,
        choices: [
          {
            index: 0,
            logprobs: null,
            message: toolCalls
              ? { role: 'assistant', content: null, tool_calls: toolCallsBody(toolCalls, id.slice(9, 17)) }
              : { role: 'assistant', content: c.text },
            finish_reason: toolCalls ? 'tool_calls' : c.finishReason === 'length' ? 'length' : 'stop',
          },
        ],
        usage: usage(c),
      };
    }
    return streamCompletion(reply, engine, request, cancel.signal, {
      id,
      model: o.modelName,
      buffered: conv.tools !== undefined,
      includeUsage: body.stream_options?.include_usage ?? false,
      calls,
      usage,
    });
  });

  return app;
}

interface StreamContext {
  id: string;
  model: string;
  /** with tools the answer may be a call, known only at the end: it is sent whole then */
  buffered: boolean;
  includeUsage: boolean;
  calls(c: Completion): ReturnType<typeof extractCalls>;
  usage(c: Completion): Record<string, number>;
}

async function streamCompletion(
  reply: FastifyReply,
  engine: GenerationEngine,
  request: Parameters<GenerationEngine['submit']>[0],
  signal: AbortSignal,
  s: StreamContext,
): Promise<void> {
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: object, finish: string | null, extra: object = {}) =>
    `data: ${JSON.stringify({ id: s.id, object: 'chat.completion.chunk', created, model: s.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...extra })}\n\n`;
  const write = (text: string) => {
    if (!reply.raw.destroyed) reply.raw.write(text);
  };
  // submit before the headers go out: a full queue must still be able to answer 429 as plain JSON
  const done = engine.submit(
    request,
    s.buffered ? undefined : (delta) => write(chunk({ content: delta }, null)),
    signal,
  );
  reply.hijack();
  reply.raw.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  write(chunk({ role: 'assistant', content: '' }, null));
  const c = await done;
  if (c.finishReason === 'cancelled') {
    reply.raw.destroy();
    return;
  }
  const toolCalls = s.calls(c);
  if (toolCalls) {
    write(
      chunk({ tool_calls: toolCallsBody(toolCalls, s.id.slice(9, 17)).map((t, index) => ({ index, ...t })) }, null),
    );
  } else if (s.buffered && c.text) {
    write(chunk({ content: c.text }, null));
  }
  write(chunk({}, toolCalls ? 'tool_calls' : c.finishReason === 'length' ? 'length' : 'stop'));
  if (s.includeUsage)
    write(
      `data: ${JSON.stringify({ id: s.id, object: 'chat.completion.chunk', created, model: s.model, choices: [], usage: s.usage(c) })}\n\n`,
    );
  write('data: [DONE]\n\n');
  reply.raw.end();
}
