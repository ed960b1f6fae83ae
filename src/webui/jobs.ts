/**
 * The web UI's jobs: each is one `lmf` command (train, eval, export) run as a child process, with no shell,
 * on a YAML file the page built. A job's folder (lmfactory_board/runs/<time>-<kind>/) keeps args.yaml,
 * running_log.txt (the child's output) and job.json; the charts read the trainer's own trainer_log.jsonl.
 * One job runs at a time; a page that reloads finds it again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { writeTextAtomic } from '../io/atomic.js';
import { ensureDir } from '../io/dirs.js';
import type { JobInfo, JobKind, JobState, LogRecord } from '../wire.js';

export type { JobInfo, JobKind, JobState, JobStatus } from '../wire.js';

export class BusyError extends Error {}

export class JobRunner {
  private current: { info: JobInfo; child: ChildProcess; aborted: boolean } | null = null;
  private last: JobInfo | null = null;

  constructor(
    private readonly boardDir: string,
    private readonly lmfBin: string,
  ) {}

  get runsDir(): string {
    return path.join(this.boardDir, 'runs');
  }

  start(kind: JobKind, yamlText: string, outputDir: string): JobInfo {
    if (this.current)
      throw new BusyError(
        `a ${this.current.info.kind} job is running (${this.current.info.id}); abort it or wait for it to end`,
      );
    const id = `${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}-${kind}`;
    const dir = path.join(this.runsDir, id);
    ensureDir(dir);
    const yaml = path.join(dir, 'args.yaml');
    writeTextAtomic(yaml, yamlText);
    const command = [this.lmfBin, kind, yaml];
    const log = openSync(path.join(dir, 'running_log.txt'), 'a');
    const child = spawn(process.execPath, command, {
      stdio: ['ignore', log, log],
      cwd: process.cwd(),
      env: { ...process.env, FORCE_COLOR: '0' },
    });
    closeSync(log);
    const info: JobInfo = {
      id,
      kind,
      outputDir,
      yaml,
      command: ['lmf', kind, path.relative(process.cwd(), yaml)],
      status: 'running',
      exitCode: null,
      startedAt: new Date().toISOString(),
      endedAt: null,
      error: null,
    };
    this.current = { info, child, aborted: false };
    this.save(info);
    child.on('exit', (code, signal) => {
      const c = this.current;
      if (!c || c.child !== child) return;
      info.exitCode = code ?? (signal ? 128 : 1);
      info.status = c.aborted ? 'aborted' : code === 0 ? 'finished' : 'failed';
      info.endedAt = new Date().toISOString();
      if (info.status === 'failed') info.error = errorLines(this.logTail(info, 4000));
      this.save(info);
      this.last = info;
      this.current = null;
    });
    return info;
  }

  /** Asks the job to stop: the trainer saves a checkpoint on SIGINT and exits. */
  abort(): boolean {
    if (!this.current) return false;
    this.current.aborted = true;
    this.current.child.kill('SIGINT');
    return true;
  }

  /** The running job, else the one that ended last. */
  state(since: number): JobState {
    const job = this.current?.info ?? this.last;
    if (!job) return { job: null, records: [], logTail: '', results: null };
    return {
      job,
      records: this.records(job, since),
      logTail: this.logTail(job, 20000),
      results: job.status === 'running' ? null : this.results(job),
    };
  }

  /** Jobs of earlier sessions too, newest first. */
  history(): JobInfo[] {
    if (!existsSync(this.runsDir)) return [];
    return readdirSync(this.runsDir)
      .sort()
      .reverse()
      .flatMap((id) => {
        const file = path.join(this.runsDir, id, 'job.json');
        try {
          const info = JSON.parse(readFileSync(file, 'utf8')) as JobInfo;
          // a job.json that says running but is not ours was cut off (the UI stopped while it ran)
          if (info.status === 'running' && info.id !== this.current?.info.id) info.status = 'aborted';
          return [info];
        } catch {
          return [];
        }
      });
  }

  stopAll(): void {
    this.current?.child.kill('SIGINT');
  }

  private save(info: JobInfo): void {
    writeTextAtomic(path.join(this.runsDir, info.id, 'job.json'), `${JSON.stringify(info, null, 2)}\n`);
  }

  private records(job: JobInfo, since: number): LogRecord[] {
    const file = path.join(job.outputDir, 'trainer_log.jsonl');
    if (job.kind !== 'train' || !existsSync(file) || statSync(file).mtimeMs < Date.parse(job.startedAt) - 1000)
      return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .slice(since)
      .flatMap((l) => {
        try {
          return l.trim() ? [JSON.parse(l) as LogRecord] : [];
        } catch {
          return []; // a line being written
        }
      });
  }

  private logTail(job: JobInfo, chars: number): string {
    const file = path.join(this.runsDir, job.id, 'running_log.txt');
    if (!existsSync(file)) return '';
    const text = readFileSync(file, 'utf8');
    return text.slice(-chars);
  }

  private results(job: JobInfo): Record<string, unknown> | null {
    const candidates =
      job.kind === 'eval' ? ['results.json'] : job.kind === 'train' ? ['predict_results.json', 'all_results.json'] : [];
    for (const f of candidates) {
      const file = path.join(job.outputDir, f);
      if (existsSync(file) && statSync(file).mtimeMs >= Date.parse(job.startedAt) - 1000)
        return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    }
    return null;
  }
}

/** The CLI's "error [...]" line and its hint, from the end of its output. */
function errorLines(tail: string): string {
  const lines = tail.trimEnd().split('\n');
  let at = lines.length - 1;
  while (at >= 0 && !lines[at].startsWith('error')) at--;
  return (at >= 0 ? lines.slice(at) : lines.slice(-3)).join('\n');
}
