/**
 * Downloading a Hugging Face Hub repository into the cache exactly as huggingface_hub lays it out
 * (<cache>/models--org--name/blobs/<etag>, snapshots/<commit>/<file> → ../../blobs/<etag>, refs/<revision>), so
 * Python tools and LMFactory share one cache. @huggingface/hub speaks the Hub's API (repository info at a
 * revision, each file's size and ETag, ranged reads); this module adds what a training tool needs on top: only
 * the files a model needs, resuming a partial blob (`.incomplete`) with a Range request after a dropped
 * connection or a killed run, progress with speed and ETA, and an all-or-nothing snapshot (links and the ref
 * are written once every blob is complete). HF_ENDPOINT, HF_TOKEN (or the token file) and HF_HUB_OFFLINE are
 * honoured as huggingface_hub honours them.
 */
import {
  copyFileSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import path from 'node:path';
import { datasetInfo, downloadFile, fileDownloadInfo, HubApiError, listFiles, modelInfo } from '@huggingface/hub';
import { LmfError } from '../errors.js';
import { writeTextAtomic } from './atomic.js';
import { findCachedSnapshot, hubCacheDirs, isHubId } from './hub-cache.js';

export type RepoKind = 'model' | 'dataset';

export interface HubAccess {
  endpoint: string;
  token: string | undefined;
  offline: boolean;
}

/** Where the Hub is and who asks: HF_ENDPOINT, HF_TOKEN (else HUGGING_FACE_HUB_TOKEN, else the token file). */
export function hubAccess(env: NodeJS.ProcessEnv = process.env): HubAccess {
  const home = env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(env.HOME ?? '', '.cache'), 'huggingface');
  const tokenFile = env.HF_TOKEN_PATH ?? path.join(home, 'token');
  const fromFile = existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : '';
  return {
    endpoint: (env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, ''),
    token: env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || fromFile || undefined,
    offline: /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? ''),
  };
}

/** The files of a model (or adapter) repository that LMFactory reads: configs, tokenizer, safetensors weights. */
export function modelFiles(all: string[]): string[] {
  const top = all.filter((f) => !f.includes('/'));
  return top.filter((f) => /\.(json|jinja|txt|model|safetensors)$/.test(f) && f !== 'pytorch_model.bin.index.json');
}

/**
 * The local folder for a model folder or Hub id: the folder itself; the cached snapshot of that revision; else
 * the repository downloaded into the cache (never with HF_HUB_OFFLINE, which stops with the folders searched).
 */
export async function resolveHubPath(
  nameOrPath: string,
  o: {
    revision?: string;
    kind?: RepoKind;
    files?: SnapshotRequest['files'];
    env?: NodeJS.ProcessEnv;
    print?: (line: string) => void;
  } = {},
): Promise<string> {
  if (!isHubId(nameOrPath)) return nameOrPath;
  const revision = o.revision ?? 'main';
  const kind = o.kind ?? 'model';
  const env = o.env ?? process.env;
  const cached = findCachedSnapshot(nameOrPath, revision, kind, env);
  if (cached.snapshot) return cached.snapshot;
  const access = hubAccess(env);
  if (access.offline)
    throw new LmfError(
      'model_not_cached',
      `"${nameOrPath}" (revision ${revision}) is neither a folder nor in the Hugging Face cache, and HF_HUB_OFFLINE is set`,
      { hint: `searched ${cached.searched.join(', ')}; unset HF_HUB_OFFLINE to download it, or give a local folder` },
    );
  return downloadSnapshot({
    id: nameOrPath,
    kind,
    revision,
    files: o.files ?? modelFiles,
    access,
    cacheDir: hubCacheDirs(env)[0],
    print: o.print,
  });
}

export interface SnapshotRequest {
  id: string;
  kind: RepoKind;
  revision: string;
  /** picks the files to fetch from the repository's list; `readText` reads a small file of it (a dataset card) */
  files: (all: string[], readText: (file: string) => Promise<string | null>) => string[] | Promise<string[]>;
  access: HubAccess;
  cacheDir?: string;
  print?: (line: string) => void;
}

/** Attempts at one file before the download gives up (each resumes where the last one stopped). */
const attempts = 5;

/** Downloads the chosen files of a repository at a revision; returns the snapshot folder. */
export async function downloadSnapshot(r: SnapshotRequest): Promise<string> {
  const print = r.print ?? ((line: string) => process.stderr.write(`${line}\n`));
  const params = { hubUrl: r.access.endpoint, accessToken: r.access.token };
  const repoDir = path.join(r.cacheDir ?? hubCacheDirs()[0], `${r.kind}s--${r.id.replace('/', '--')}`);
  const info = await hubCall(r, () =>
    r.kind === 'model'
      ? modelInfo({ ...params, name: r.id, revision: r.revision, additionalFields: ['sha'] })
      : datasetInfo({ ...params, name: r.id, revision: r.revision, additionalFields: ['sha'] }),
  );
  const commit = info.sha;
  const listed = await hubCall(r, async () => {
    const out: string[] = [];
    const entries = listFiles({ ...params, repo: { type: r.kind, name: r.id }, revision: commit, recursive: true });
    for await (const e of entries) if (e.type === 'file') out.push(e.path);
    return out;
  });
  const repo = { type: r.kind, name: r.id } as const;
  const readText = async (file: string) => {
    if (!listed.includes(file)) return null;
    const blob = await hubCall(r, () => downloadFile({ ...params, repo, path: file, revision: commit }));
    return blob ? blob.text() : null;
  };
  const files = await r.files(listed, readText);
  const snapshot = path.join(repoDir, 'snapshots', commit);
  if (!files.length)
    throw new LmfError('hub_no_files', `${r.id} has no file LMFactory can read`, {
      hint: `the repository lists ${listed.slice(0, 8).join(', ') || 'nothing'}`,
    });
  const blobs: [string, string][] = [];
  for (const file of files) {
    if (existsSync(path.join(snapshot, file))) continue; // linked by an earlier download of this commit
    const meta = await hubCall(r, () => fileDownloadInfo({ ...params, repo, path: file, revision: commit }));
    if (!meta) throw new LmfError('hub_no_files', `${r.id} lists ${file} but the Hub does not serve it`);
    const blob = path.join(repoDir, 'blobs', normalizeEtag(meta.etag));
    if (!existsSync(blob)) {
      await fetchBlob(blob, meta.size, file, print, async (from) => {
        const whole = await hubCall(r, () =>
          downloadFile({ ...params, repo, path: file, revision: commit, downloadInfo: meta }),
        );
        if (!whole) throw new LmfError('hub_no_files', `${r.id}: ${file} disappeared from the Hub`);
        return whole.slice(from).stream();
      });
    }
    blobs.push([file, blob]);
  }
  for (const [file, blob] of blobs) link(blob, path.join(snapshot, file));
  if (r.revision !== commit) writeTextAtomic(path.join(repoDir, 'refs', r.revision), commit);
  return snapshot;
}

/** huggingface_hub names blobs by the ETag without quotes or a weak-validator prefix. */
function normalizeEtag(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}

/**
 * Streams one file into `<blob>.incomplete`, appending after what an earlier attempt (or run) left there, and
 * renames it into place once it has all `size` bytes.
 */
async function fetchBlob(
  blob: string,
  size: number,
  name: string,
  print: (line: string) => void,
  open: (from: number) => Promise<ReadableStream<Uint8Array>>,
): Promise<void> {
  mkdirSync(path.dirname(blob), { recursive: true });
  const partial = `${blob}.incomplete`;
  const progress = new Progress(name, size, print);
  for (let attempt = 1; ; attempt++) {
    let have = existsSync(partial) ? statSync(partial).size : 0;
    if (have > size) {
      rmSync(partial);
      have = 0;
    }
    if (have > 0) progress.resumedAt(have);
    try {
      if (have < size) await appendStream(await open(have), partial, (n) => progress.add(n));
      const got = statSync(partial).size;
      if (got !== size) throw new Error(`got ${got} of ${size} bytes`);
      renameSync(partial, blob);
      progress.done();
      return;
    } catch (err) {
      if (err instanceof LmfError || attempt >= attempts) {
        if (err instanceof LmfError) throw err;
        throw new LmfError('hub_download', `downloading ${name} failed after ${attempts} attempts`, {
          file: partial,
          hint: `${(err as Error).message}; run again to resume from ${formatBytes(statSafe(partial))}`,
        });
      }
      print(`${name}: ${(err as Error).message}; resuming (attempt ${attempt + 1} of ${attempts})`);
    }
  }
}

function statSafe(file: string): number {
  return existsSync(file) ? statSync(file).size : 0;
}

async function appendStream(
  stream: ReadableStream<Uint8Array>,
  file: string,
  onBytes: (n: number) => void,
): Promise<void> {
  const out = createWriteStream(file, { flags: 'a' });
  const closed = new Promise<void>((resolve, reject) => {
    out.on('close', resolve);
    out.on('error', reject);
  });
  try {
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      onBytes(chunk.length);
    }
  } finally {
    out.end();
    await closed;
  }
}

/** A relative link, as huggingface_hub makes them; a copy where links are not allowed. */
function link(blob: string, pointer: string): void {
  if (existsSync(pointer)) return;
  mkdirSync(path.dirname(pointer), { recursive: true });
  try {
    symlinkSync(path.relative(path.dirname(pointer), blob), pointer);
  } catch {
    copyFileSync(blob, pointer);
  }
}

/** Turns the Hub client's failures into one message naming the repository and what to do. */
async function hubCall<T>(r: SnapshotRequest, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const where = `${r.kind} ${r.id} (revision ${r.revision}) at ${r.access.endpoint}`;
    if (err instanceof HubApiError) {
      if (err.statusCode === 401 || err.statusCode === 403)
        throw new LmfError('hub_access', `${where}: access refused (HTTP ${err.statusCode}); it is gated or private`, {
          hint: r.access.token
            ? 'this token cannot read it: accept the terms on its Hub page, or use a token with access'
            : 'set HF_TOKEN to a token that can read it (and accept the terms on its Hub page)',
        });
      if (err.statusCode === 404)
        throw new LmfError('hub_not_found', `${where}: not found`, {
          hint: 'check the id and the revision (model_revision)',
        });
      throw new LmfError('hub_error', `${where}: HTTP ${err.statusCode}`, { hint: err.message });
    }
    if (err instanceof LmfError) throw err;
    throw new LmfError('hub_unreachable', `${where}: ${(err as Error).message}`, {
      hint: 'check the network or HF_ENDPOINT; HF_HUB_OFFLINE=1 uses only the cache',
    });
  }
}

function formatBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`;
}

/** Download progress: bytes, percentage, speed and ETA, at most one line a second (and at the end). */
class Progress {
  private got = 0;
  private readonly start = performance.now();
  private fromStart = 0;
  private last = 0;

  constructor(
    private readonly name: string,
    private readonly size: number,
    private readonly print: (line: string) => void,
  ) {}

  resumedAt(bytes: number): void {
    this.got = bytes;
    this.fromStart = bytes;
    this.print(`${this.name}: resuming at ${formatBytes(bytes)} of ${formatBytes(this.size)}`);
  }

  add(n: number): void {
    this.got += n;
    const now = performance.now();
    if (now - this.last >= 1000) {
      this.last = now;
      this.report(now);
    }
  }

  done(): void {
    this.got = this.size;
    this.report(performance.now());
  }

  private report(now: number): void {
    const seconds = Math.max((now - this.start) / 1000, 1e-3);
    const rate = (this.got - this.fromStart) / seconds;
    const eta = rate > 0 ? (this.size - this.got) / rate : 0;
    const pct = this.size ? ((100 * this.got) / this.size).toFixed(0) : '100';
    const etaText = `${Math.floor(eta / 60)}:${String(Math.round(eta % 60)).padStart(2, '0')}`;
    this.print(
      `downloading ${this.name}: ${formatBytes(this.got)} / ${formatBytes(this.size)} (${pct}%), ${formatBytes(rate)}/s, ETA ${etaText}`,
    );
  }
}
