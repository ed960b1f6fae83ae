/**
 * `lmf bench --contend`: one measurement alone, then the same beside another process that keeps one of this
 * process's CPUs busy (a spinning Node pinned there with taskset, as another job on a shared machine would),
 * in one run. The slowdowns are the rates alone over the rates beside it; threads adapt as in training and
 * serving (src/threads.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { native } from '../native.js';

/** The last CPU this process may run on (where the busy neighbour is pinned). */
function lastAllowedCpu(): number | null {
  const list = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  const last = list?.split(/[,-]/).pop();
  return last === undefined ? null : Number(last);
}

function busyNeighbour(): () => void {
  const spin = [process.execPath, '-e', 'for (;;);'];
  const cpu = lastAllowedCpu();
  const pinned = cpu !== null && spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
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
