/** Atomic file output: write to a temporary file beside the target, flush it to disk, then rename. */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { LmfError } from '../errors.js';
import { ensureDir, tempPath } from './dirs.js';

/** Calls write(fd) on a temporary file and moves it into place only if everything was written. */
export function writeFileAtomic(file: string, write: (fd: number) => void): void {
  ensureDir(path.dirname(file));
  const tmp = tempPath(file);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'w');
    write(fd);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, file);
  } catch (err) {
    if (fd !== null) closeSync(fd);
    rmSync(tmp, { force: true });
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOSPC') {
      throw new LmfError('disk_full', 'the disk is full; nothing was written', {
        file,
        hint: 'free some space and run again',
      });
    }
    throw err;
  }
}

/** Writes all of `bytes` at the current position of fd. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}

export function writeTextAtomic(file: string, text: string): void {
  writeFileAtomic(file, (fd) => writeAll(fd, Buffer.from(text, 'utf8')));
}
