/**
 * `lmf webui`: the page (web/, built by vite) and its JSON API from one process. The page builds the same
 * YAML `lmf train` reads, checked by the same schema; jobs run the CLI as child processes (jobs.ts), chat
 * goes through `lmf api` (chat.ts). Requests from other origins or other host names are refused, every path
 * must lie under an allowed root, and a token guards the server when it listens beyond loopback.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../version.js';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { stringify } from 'yaml';
import { describeIssues } from '../config/load.js';
import { configSchema } from '../config/schema.js';
import { readDatasetInfo } from '../data/dataset-info.js';
import { templateNames } from '../data/templates/registry.js';
import { LmfError } from '../errors.js';
import { writeTextAtomic } from '../io/atomic.js';
import { parseModelConfig, type ModelConfig } from '../models/config.js';
import { familyById } from '../models/families/index.js';
import { ChatProcess } from './chat.js';
import { BusyError, JobRunner, type JobKind } from './jobs.js';
import { PathGuard, pathKeys } from './paths.js';
import type { DatasetInfo, ModelInfo } from '../wire.js';
import { ensureDir } from '../io/dirs.js';

export interface WebuiOptions {
  host: string;
  port: number;
  /** folders (besides the working directory) whose paths the page may use */
  roots: string[];
  /** required (cookie or x-lmf-token header) when set */
  token?: string;
  /** where saved arguments, job folders and the chat config live */
  boardDir?: string;
}

class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const requiredFor: Record<JobKind, string[]> = {
  train: ['model_name_or_path', 'output_dir'],
  eval: ['model_name_or_path', 'task', 'save_dir'],
  export: ['model_name_or_path', 'export_dir'],
};
const outputKey: Record<JobKind, string> = { train: 'output_dir', eval: 'save_dir', export: 'export_dir' };

/** A rough parameter count from config.json (embeddings, projections, norms). */
function parameterCount(c: ModelConfig): number {
  const C = c.hiddenSize,
    q = c.numHeads * c.headDim,
    kv = c.numKvHeads * c.headDim;
  const norms = (c.sandwichNorms ? 4 : 2) * C + (c.qkNorm ? 2 * c.headDim : 0);
  const layer = C * q * 2 + C * kv * 2 + 3 * C * c.intermediateSize + norms;
  return c.vocabSize * C * (c.tieWordEmbeddings ? 1 : 2) + c.numLayers * layer + C;
}

/** The template a model folder most likely wants: its family's reading of the chat_template, else a base model. */
function guessTemplate(dir: string, c: ModelConfig): { template: string; base: boolean } {
  let chat = '';
  try {
    chat =
      (JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as { chat_template?: string })
        .chat_template ?? '';
  } catch {
    /* no tokenizer_config.json */
  }
  const template = chat ? familyById(c.family).template(chat) : null;
  return template ? { template, base: false } : { template: 'default', base: true };
}

/** The request's JSON body as an object: `null`, a list or a bare value is refused with 400. */
function bodyOf(req: FastifyRequest): Record<string, unknown> {
  const b = req.body;
  if (!b || typeof b !== 'object' || Array.isArray(b))
    throw new RequestError(400, 'the request body must be a JSON object');
  return b as Record<string, unknown>;
}

/** A JSON file the board reads; a malformed one is the user's file to fix (400), not a server fault. */
function readJsonFile(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch (err) {
    throw new RequestError(400, `${file} is not valid JSON (${(err as Error).message})`);
  }
}

export async function buildWebui(o: WebuiOptions): Promise<FastifyInstance> {
  const guard = new PathGuard([process.cwd(), ...o.roots]);
  const boardDir = path.resolve(o.boardDir ?? 'lmfactory_board');
  const lmfBin = path.join(packageRoot, 'bin', 'lmf.js');
  const jobs = new JobRunner(boardDir, lmfBin);
  const chat = new ChatProcess(boardDir, lmfBin);
  const app = Fastify({ bodyLimit: 1024 * 1024 });

  const checked = (p: unknown, key: string): string => {
    const abs = typeof p === 'string' ? guard.resolve(p) : null;
    if (!abs)
      throw new RequestError(
        403,
        `${key}: "${String(p)}" is outside the folders this board may use (${guard.roots.join(', ')})`,
      );
    return abs;
  };
  /** Validates a config from the page; returns its YAML. */
  const toYaml = (
    kind: JobKind | 'chat' | 'preview',
    args: unknown,
  ): { yaml: string; config: Record<string, unknown> } => {
    if (!args || typeof args !== 'object' || Array.isArray(args))
      throw new RequestError(400, 'the arguments must be an object of config keys');
    const config = Object.fromEntries(
      Object.entries(args as Record<string, unknown>).filter(([, v]) => v !== '' && v !== null && v !== undefined),
    );
    const required = kind === 'chat' || kind === 'preview' ? ['model_name_or_path'] : requiredFor[kind];
    const missing = required.filter((k) => !(k in config));
    const parsed = configSchema.safeParse(config);
    const described = parsed.success
      ? []
      : describeIssues(parsed.error.issues, config).filter((p) => !missing.includes(p.key));
    const problems = [
      ...missing.map((k) => `${k} is required`),
      ...described.map((p) => `${p.message}${p.hint ? ` (${p.hint})` : ''}`),
    ];
    if (problems.length) throw new RequestError(400, problems.join('; '));
    for (const key of pathKeys) {
      const v = config[key];
      if (v === undefined) continue;
      if (Array.isArray(v)) v.forEach((p) => checked(p, key));
      else
        String(v)
          .split(',')
          .forEach((p) => checked(p.trim(), key));
    }
    return { yaml: stringify(config), config };
  };

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const host = req.headers.host ?? '';
    // o.port is read per request: with port 0 the caller fills in the real one after listening
    const allowedHosts = new Set([
      `127.0.0.1:${o.port}`,
      `localhost:${o.port}`,
      `${o.host}:${o.port}`,
      `[::1]:${o.port}`,
    ]);
    // on loopback without a token, a foreign Host means a page elsewhere resolved its name to us (DNS rebinding);
    // beyond loopback the token guards every request and users reach the board by any of the machine's names
    if (!o.token && !allowedHosts.has(host)) return reply.status(403).send({ error: `unexpected Host "${host}"` });
    const origin = req.headers.origin;
    if ((origin && origin !== `http://${host}`) || req.headers['sec-fetch-site'] === 'cross-site') {
      return reply.status(403).send({ error: 'requests from other origins are refused' });
    }
    if (o.token) {
      const url = new URL(req.url, `http://${host}`);
      if (url.searchParams.get('token') === o.token) {
        reply.header('set-cookie', `lmf_token=${o.token}; HttpOnly; SameSite=Strict; Path=/`);
        return;
      }
      const cookie = /(?:^|;\s*)lmf_token=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
      if (cookie !== o.token && req.headers['x-lmf-token'] !== o.token)
        return reply.status(401).send({ error: 'open the address printed by lmf webui (it carries the access token)' });
    }
    return undefined;
  });

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    if (err instanceof RequestError) return reply.status(err.status).send({ error: err.message });
    if (err instanceof BusyError) return reply.status(409).send({ error: err.message });
    if (err instanceof LmfError) return reply.status(400).send({ error: err.format() });
    const status = err.statusCode && err.statusCode < 500 ? err.statusCode : 500;
    return reply.status(status).send({ error: err.message });
  });

  app.get('/api/info', async () => ({
    roots: guard.roots,
    cwd: process.cwd(),
    templates: templateNames,
    running: jobs.state(0).job?.status === 'running',
  }));

  app.get('/api/model', async (req): Promise<ModelInfo> => {
    const dir = checked((req.query as { path?: string }).path, 'model_name_or_path');
    const file = path.join(dir, 'config.json');
    if (!existsSync(file)) throw new RequestError(400, `no config.json in ${dir}: not a Hugging Face model folder`);
    const raw = readJsonFile(file);
    if (!raw || typeof raw !== 'object' || Array.isArray(raw))
      throw new RequestError(400, `${file} must hold a JSON object`);
    const c = parseModelConfig(raw as Record<string, unknown>, file);
    return {
      architecture: (raw as { architectures?: string[] }).architectures?.[0] ?? c.modelType,
      modelType: c.modelType,
      family: familyById(c.family).title,
      parameters: parameterCount(c),
      dtype: (raw as { torch_dtype?: string }).torch_dtype ?? 'float32',
      layers: c.numLayers,
      hidden: c.hiddenSize,
      vocab: c.vocabSize,
      ...guessTemplate(dir, c),
    };
  });

  app.get('/api/datasets', async (req): Promise<DatasetInfo[]> => {
    const dir = checked((req.query as { dir?: string }).dir ?? 'data', 'dataset_dir');
    const info = readDatasetInfo(dir);
    return Object.entries(info).map(([name, e]) => ({
      name,
      ranking: e.ranking === true,
      kto: Boolean(e.columns?.kto_tag),
      formatting: e.formatting ?? 'alpaca',
    }));
  });

  app.post('/api/yaml', async (req) => {
    const { kind, args } = bodyOf(req) as { kind: JobKind; args: unknown };
    if (!(kind in requiredFor)) throw new RequestError(400, `unknown job kind "${kind}"`);
    const { yaml } = toYaml(kind, args);
    return { yaml, command: `lmf ${kind} ${kind}.yaml` };
  });

  app.post('/api/data-preview', async (req) => {
    const { yaml } = toYaml('preview', bodyOf(req).args);
    ensureDir(boardDir);
    const file = path.join(boardDir, 'preview.yaml');
    writeTextAtomic(file, yaml);
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [lmfBin, 'data', 'preview', file, '--n', '3'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 120_000,
      });
      let text = '';
      child.stdout.on('data', (d: Buffer) => {
        text += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        text += d.toString();
      });
      child.on('close', (c) => resolve({ code: c, out: text }));
    });
    if (code !== 0) throw new RequestError(400, out.trim());
    return { text: out };
  });

  app.post('/api/jobs', async (req) => {
    const { kind, args } = bodyOf(req) as { kind: JobKind; args: unknown };
    if (!(kind in requiredFor)) throw new RequestError(400, `unknown job kind "${kind}"`);
    const { yaml, config } = toYaml(kind, args);
    return jobs.start(kind, yaml, checked(config[outputKey[kind]], outputKey[kind]));
  });
  app.get('/api/jobs/current', async (req) => jobs.state(Number((req.query as { since?: string }).since ?? 0) || 0));
  app.post('/api/jobs/abort', async () => ({ aborted: jobs.abort() }));
  app.get('/api/jobs', async () => jobs.history());

  const argsDir = path.join(boardDir, 'saved_args');
  app.get('/api/args', async () =>
    existsSync(argsDir)
      ? readdirSync(argsDir)
          .filter((f) => f.endsWith('.json'))
          .map((f) => f.slice(0, -5))
          .sort()
      : [],
  );
  app.get('/api/args/:name', async (req) => {
    const name = (req.params as { name: string }).name;
    if (!/^[\w.-]+$/.test(name)) throw new RequestError(400, 'names use letters, digits, dot, dash and underscore');
    const file = path.join(argsDir, `${name}.json`);
    if (!existsSync(file)) throw new RequestError(404, `no saved arguments "${name}"`);
    return readJsonFile(file);
  });
  app.post('/api/args', async (req) => {
    const { name, args } = bodyOf(req) as { name: string; args: unknown };
    if (typeof name !== 'string' || !/^[\w.-]+$/.test(name))
      throw new RequestError(400, 'names use letters, digits, dot, dash and underscore');
    writeTextAtomic(path.join(argsDir, `${name}.json`), `${JSON.stringify(args, null, 2)}\n`);
    return { saved: name };
  });

  app.post('/api/chat/load', async (req) => {
    const { yaml, config } = toYaml('chat', bodyOf(req).args);
    try {
      const t = await chat.load(yaml, path.basename(String(config.model_name_or_path)));
      return { model: t.model };
    } catch (err) {
      throw new RequestError(400, (err as Error).message);
    }
  });
  app.post('/api/chat/unload', async () => {
    chat.unload();
    return { unloaded: true };
  });
  app.get('/api/chat/status', async () => ({ model: chat.loaded?.model ?? null }));
  app.post('/api/chat', async (req, reply) => {
    const target = chat.loaded;
    if (!target) throw new RequestError(409, 'load a model first');
    const body = bodyOf(req);
    const upstream = await fetch(`${target.url}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${target.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, model: target.model, stream: true }),
    });
    if (!upstream.ok || !upstream.body) {
      const e = (await upstream.json().catch(() => null)) as { error?: { message?: string } } | null;
      throw new RequestError(upstream.status, e?.error?.message ?? `the model server answered ${upstream.status}`);
    }
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const reader = upstream.body.getReader();
    reply.raw.on('close', () => void reader.cancel().catch(() => {}));
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) break;
      reply.raw.write(value);
    }
    reply.raw.end();
  });

  const dist = path.join(packageRoot, 'web', 'dist');
  if (existsSync(dist)) await app.register(fastifyStatic, { root: dist });
  else
    app.get('/', async () => {
      throw new RequestError(500, 'the page is not built: run bash scripts/setup.sh');
    });
  app.addHook('onClose', async () => {
    jobs.stopAll();
    chat.unload();
  });
  return app;
}
