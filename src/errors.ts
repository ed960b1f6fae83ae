/** One error type for everything a user can get wrong: it names the file, row or key and says what to do. */
export interface LmfErrorContext {
  file?: string;
  row?: number;
  key?: string;
  tensor?: string;
  hint?: string;
}

export class LmfError extends Error {
  readonly code: string;
  readonly context: LmfErrorContext;

  constructor(code: string, message: string, context: LmfErrorContext = {}) {
    super(message);
    this.name = 'LmfError';
    this.code = code;
    this.context = context;
  }

  /** Two lines for the terminal: where and what, then what to do. */
  format(): string {
    const where = [
      this.context.file,
      this.context.row !== undefined ? `row ${this.context.row}` : undefined,
      this.context.key !== undefined ? `key ${this.context.key}` : undefined,
      this.context.tensor !== undefined ? `tensor ${this.context.tensor}` : undefined,
    ]
      .filter((s) => s !== undefined)
      .join(': ');
    const head = `error [${this.code}]${where ? ` ${where}:` : ''} ${this.message}`;
    return this.context.hint ? `${head}\n  hint: ${this.context.hint}` : head;
  }
}

/** What the operating system's refusals mean, and what to do about each. */
const systemErrors: Record<string, { what: string; hint: string }> = {
  EACCES: { what: 'permission denied', hint: 'check the permissions of the file or folder, or choose another path' },
  EPERM: {
    what: 'operation not permitted',
    hint: 'check the permissions of the file or folder, or choose another path',
  },
  EROFS: { what: 'the file system is read-only', hint: 'choose a path on a writable disk' },
  ENOSPC: { what: 'the disk is full', hint: 'free some space and run again' },
  EDQUOT: { what: 'the disk quota is exhausted', hint: 'free some space and run again' },
  ENOTDIR: { what: 'a part of the path is a file, not a folder', hint: 'check the path' },
  EISDIR: { what: 'a folder was given where a file is needed', hint: 'name the file inside the folder' },
  ENOENT: { what: 'no such file or folder', hint: 'check the path' },
  EMFILE: { what: 'too many open files', hint: 'raise the limit (ulimit -n) or close other programs' },
  EADDRINUSE: {
    what: 'the address is already in use',
    hint: 'another program listens there: stop it or choose another --port',
  },
  EADDRNOTAVAIL: {
    what: 'the address is not available on this machine',
    hint: 'choose a --host this machine has (127.0.0.1 or 0.0.0.0)',
  },
};

/**
 * An LmfError for an operating-system error (a Node error with an errno code), naming the file or the port;
 * null for any other error, which then is a bug of ours.
 */
export function fromSystemError(err: unknown, key?: string): LmfError | null {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const known = e && typeof e.code === 'string' ? systemErrors[e.code] : undefined;
  if (!known) return null;
  const where = e.path ?? (e.port !== undefined ? `${e.address ?? ''}:${e.port}` : undefined);
  const action = e.syscall ? ` (${e.syscall})` : '';
  return new LmfError(e.code!.toLowerCase(), `${known.what}${action}`, { file: where, key, hint: known.hint });
}
