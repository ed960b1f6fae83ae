// A Hugging Face Hub on loopback serving the endpoints a download uses, from folders on disk: repository info at a
// revision (/api/{models,datasets}/ID/revision/REV), the file tree (/api/.../tree/REV), and files
// (/[datasets/]ID/resolve/REV/PATH: GET with Range, HEAD) with ETag, X-Repo-Commit and Content-Range. A gated
// repository answers 401 without its token; `dropOnce` cuts the connection halfway through a file's first full
// transfer. Every request is logged for the tests to inspect.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface ServedRepo {
  kind: 'model' | 'dataset';
  id: string;
  dir: string;
  /** the commit every revision resolves to */
  commit: string;
  /** a bearer token the repository demands (gated) */
  token?: string;
}

export interface HubServer {
  endpoint: string;
  log: { method: string; url: string; range?: string }[];
  /** file paths whose next full transfer is cut halfway */
  dropOnce: Set<string>;
  close(): Promise<void>;
}

function filesOf(dir: string, prefix = ''): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? filesOf(full, `${prefix}${name}/`) : [`${prefix}${name}`];
  });
}

export async function startHubServer(repos: ServedRepo[]): Promise<HubServer> {
  const log: HubServer['log'] = [];
  const dropOnce = new Set<string>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://hub');
    log.push({ method: req.method ?? 'GET', url: url.pathname, range: req.headers.range });
    const fail = (status: number, message: string) => {
      res.writeHead(status, { 'Content-Type': 'application/json', 'X-Error-Code': 'EntryNotFound' });
      res.end(JSON.stringify({ error: message }));
    };
    const p = decodeURIComponent(url.pathname);
    const api = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/.exec(p);
    const file = /^\/(datasets\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(p);
    const kind = api ? api[1].slice(0, -1) : file ? (file[1] ? 'dataset' : 'model') : null;
    const id = api?.[2] ?? file?.[2];
    const repo = repos.find((r) => r.kind === kind && r.id === id);
    if (!repo) return fail(404, 'Repository not found');
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`)
      return fail(401, 'Access to this repository is restricted');
    if (api?.[3] === 'revision') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify({ _id: 'x', id: repo.id, sha: repo.commit, private: false, gated: !!repo.token }));
    }
    if (api) {
      const entries = filesOf(repo.dir).map((f) => ({
        type: 'file',
        path: f,
        size: statSync(path.join(repo.dir, f)).size,
        oid: createHash('sha1').update(f).digest('hex'),
      }));
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify(entries));
    }
    const rel = file![4];
    const full = path.join(repo.dir, rel);
    let bytes: Buffer;
    try {
      bytes = readFileSync(full);
    } catch {
      return fail(404, 'Entry not found');
    }
    const headers: Record<string, string> = {
      ETag: `"${createHash('sha256').update(bytes).digest('hex')}"`,
      'X-Repo-Commit': repo.commit,
      'Accept-Ranges': 'bytes',
      'Content-Type': 'application/octet-stream',
    };
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...headers, 'Content-Length': String(bytes.length) });
      return res.end();
    }
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), bytes.length - 1) : bytes.length - 1;
      const part = bytes.subarray(start, end + 1);
      res.writeHead(206, {
        ...headers,
        'Content-Range': `bytes ${start}-${end}/${bytes.length}`,
        'Content-Length': String(part.length),
      });
      return res.end(part);
    }
    res.writeHead(200, { ...headers, 'Content-Length': String(bytes.length) });
    if (dropOnce.delete(rel)) {
      // half the body, a moment for it to arrive, then the connection is cut
      res.write(bytes.subarray(0, bytes.length >> 1), () => setTimeout(() => res.socket?.destroy(), 200));
      return;
    }
    res.end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    log,
    dropOnce,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
