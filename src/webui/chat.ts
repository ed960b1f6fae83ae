/**
 * The Chat tab's model: `lmf api` started as a child process on a free loopback port with a random key,
 * so the page chats through exactly what users deploy. The UI's server relays the streamed answer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { writeTextAtomic } from '../io/atomic.js';
import { ensureDir } from '../io/dirs.js';

export interface ChatTarget {
  url: string;
  key: string;
  model: string;
}

export class ChatProcess {
  private child: ChildProcess | null = null;
  private target: ChatTarget | null = null;

  constructor(
    private readonly boardDir: string,
    private readonly lmfBin: string,
  ) {}

  get loaded(): ChatTarget | null {
    return this.target;
  }

  /** Starts `lmf api` on the YAML; resolves when it listens, rejects with its error lines when it exits first. */
  async load(yamlText: string, model: string): Promise<ChatTarget> {
    this.unload();
    const dir = path.join(this.boardDir, 'chat');
    ensureDir(dir);
    const yaml = path.join(dir, 'args.yaml');
    writeTextAtomic(yaml, yamlText);
    const key = randomBytes(16).toString('hex');
    const child = spawn(process.execPath, [this.lmfBin, 'api', yaml, '--host', '127.0.0.1', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, API_KEY: key, API_MODEL_NAME: model },
    });
    this.child = child;
    const url = await new Promise<string>((resolve, reject) => {
      let out = '',
        err = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
      });
      child.once('exit', (code) => reject(new Error(err.trim() || `lmf api exited with code ${code}`)));
    });
    child.once('exit', () => {
      if (this.child === child) {
        this.child = null;
        this.target = null;
      }
    });
    this.target = { url, key, model };
    return this.target;
  }

  unload(): void {
    this.child?.kill('SIGTERM');
    this.child = null;
    this.target = null;
  }
}
