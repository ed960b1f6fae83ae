/**
 * `lmf bench --contend`: one measurement alone, then the same beside another process that keeps one of this
 * process's CPUs busy (a spinning Node pinned there with taskset, as another job on a shared machine would),
 * in one run. The slowdowns are the rates alone over the rates beside it; threads adapt as in training and
 * serving (src/threads.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { native } from '../native.js';
import { allowedCpus } from '../threads.js';

function busyNeighbour(): () => void {
  const spin = [process.execPath, '-e', 'for (;;);'];
  // the busy neighbour takes the last CPU this process may use
  const cpu = allowedCpus().at(-1);
  const pinned = cpu !== undefined && spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  const child = pinned
    ? spawn('taskset', ['-c', String(cpu), ...spin], { stdio: 'ignore' })
    : spawn(spin[0], spin.slice(1), { stdio: 'ignore' });
  return () => child.kill('SIGKILL');
}

/** measure() alone and beside a busy CPU; rates names the figures (higher is faster) whose slowdown is reported. */
export async function contended<R extends object>(
  measure: () => R,
  rates: (keyof R & string)[],
): Promise<R & { contend: Record<string, number> }> {
  const alone = measure();
  const stop = busyNeighbour();
  try {
    await new Promise((r) => setTimeout(r, 500));
    const beside = measure();
    const contend: Record<string, number> = { threads_beside: native.threads() };
    for (const k of rates) {
      const a = Number(alone[k]),
        b = Number(beside[k]);
      contend[`${k}_alone`] = a;
      contend[`${k}_slowdown`] = Math.round((a / b) * 1000) / 1000;
    }
    return { ...beside, contend };
  } finally {
    stop();
  }
}
