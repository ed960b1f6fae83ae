/**
 * Kernel threads on a shared machine. The count starts at the CPUs this process may use: its affinity and, in
 * a container, its cgroup's CPU quota. Then, at most twice a second, adaptThreads() leaves out the CPUs other
 * processes keep busy: an OpenMP kernel splits its work evenly, so a thread that shares a core with another
 * process makes every parallel region wait for it, time slice after time slice (measured on 2 cores beside one
 * busy process: decode 33.5 -> 16.3 tokens/s with 2 threads, 23.6 with 1). OMP_NUM_THREADS fixes the count.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { native } from './native.js';

/** /proc/stat counts in USER_HZ ticks, 100 a second on Linux */
const TICK_MS = 10;
const INTERVAL_MS = 500;

const fixed = process.env.OMP_NUM_THREADS !== undefined;
let budget: number | null = null;
let last: { at: number; busyMs: number; oursMs: number } | null = null;

function read(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** The CPU quota of this process's cgroup and its ancestors (cgroup v2 cpu.max, or v1's cfs quota), in CPUs. */
function cgroupQuota(): number | null {
  const lines = read('/proc/self/cgroup')?.trim().split('\n') ?? [];
  let quota: number | null = null;
  const tighten = (q: number) => (quota = quota === null ? q : Math.min(quota, q));
  const v2 = lines.find((l) => l.startsWith('0::'));
  if (v2) {
    for (
      let dir = path.join('/sys/fs/cgroup', v2.slice(3));
      dir.startsWith('/sys/fs/cgroup');
      dir = path.dirname(dir)
    ) {
      const [max, period] = (read(path.join(dir, 'cpu.max')) ?? 'max').trim().split(/\s+/);
      if (max !== 'max') tighten(Number(max) / Number(period));
      if (dir === '/sys/fs/cgroup') break;
    }
  }
  const v1 = lines.find((l) => /^\d+:(?:[^:]*,)?cpu(?:,[^:]*)?:/.test(l));
  const base = ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct'].find(existsSync);
  if (v1 && base) {
    const dir = path.join(base, v1.split(':')[2]);
    const q = Number(read(path.join(dir, 'cpu.cfs_quota_us')) ?? -1);
    if (q > 0) tighten(q / Number(read(path.join(dir, 'cpu.cfs_period_us')) ?? 100000));
  }
  return quota;
}

/** The CPUs this process may run on (its affinity), from /proc/self/status. */
export function allowedCpus(): number[] {
  const list = /Cpus_allowed_list:\s*(\S+)/.exec(read('/proc/self/status') ?? '')?.[1];
  if (!list) return Array.from({ length: availableParallelism() }, (_, i) => i);
  return list.split(',').flatMap((range) => {
    const [a, b] = range.split('-').map(Number);
    return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
  });
}

/** The threads this process should use when nothing else runs: its CPUs, within its cgroup's quota. */
export function usableCpus(): number {
  const quota = cgroupQuota();
  return Math.max(1, Math.min(availableParallelism(), quota === null ? Infinity : Math.ceil(quota)));
}

/** A share of the machine for this process (data-parallel ranks split a machine's CPUs). */
export function setThreadBudget(n: number): void {
  budget = n;
  native.threads(n);
}

const cpus = allowedCpus();

/** Busy time, in ms, of this process's CPUs since boot (every process's work: /proc/stat). */
function busyMs(): number {
  let ticks = 0;
  for (const line of (read('/proc/stat') ?? '').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m || !cpus.includes(Number(m[1]))) continue;
    const [user, nice, system, , , irq, softirq, steal] = m[2].split(/\s+/).map(Number);
    ticks += user + nice + system + irq + softirq + (steal || 0);
  }
  return ticks * TICK_MS;
}

/**
 * Sets the kernel threads to this process's budget less the CPUs other processes kept busy since the last
 * call (rounded so that a process using under two thirds of a CPU does not cost a thread). Cheap enough to
 * call before every step: it looks at the machine at most every half second.
 */
export function adaptThreads(): void {
  if (fixed) return;
  budget ??= usableCpus();
  const at = performance.now();
  if (last && at - last.at < INTERVAL_MS) return;
  const usage = process.cpuUsage();
  const now = { at, busyMs: busyMs(), oursMs: (usage.user + usage.system) / 1000 };
  if (last) {
    const others = (now.busyMs - last.busyMs - (now.oursMs - last.oursMs)) / (now.at - last.at);
    const want = Math.max(1, Math.min(budget, budget - Math.floor(others + 1 / 3)));
    if (want !== native.threads()) native.threads(want);
  } else if (native.threads() !== budget) native.threads(budget);
  last = now;
}

/**
 * Runs fn with this process's whole thread budget, not the share adaptThreads last left it, then restores that
 * share: a peak measured on one thread while a step ran on two (or the reverse) gave peak fractions above 1.
 */
export function onWholeBudget<R>(fn: () => R): R {
  if (fixed) return fn();
  const saved = native.threads();
  native.threads(budget ?? usableCpus());
  try {
    return fn();
  } finally {
    native.threads(saved);
  }
}
