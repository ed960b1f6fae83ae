/**
 * `lmf train --nproc N` (and `lmf bench --nproc N`): starts N local ranks of this same command through Open
 * MPI's mpirun, as a user would type `mpirun -np N lmf train …`. The ranks find each other in mpirun's
 * environment.
 *
 * Ctrl-C (SIGINT) or SIGTERM here is passed on as SIGUSR2, which mpirun forwards to every rank: each one
 * stops after the same step and rank 0 saves a checkpoint. (mpirun's own answer to SIGINT is to kill the
 * job, so it runs in a process group of its own, away from the terminal's signals.)
 */
import { spawn, spawnSync } from 'node:child_process';
import { constants } from 'node:os';
import { launchedWorldSize } from '../distributed/world.js';
import { LmfError } from '../errors.js';

/** This command line without --nproc (each rank runs the rest). */
export function withoutNproc(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--nproc') i++;
    else if (!argv[i].startsWith('--nproc=')) out.push(argv[i]);
  }
  return out;
}

/** Runs `lmf <command…>` as nproc ranks; resolves to mpirun's exit code. */
export async function launchRanks(nproc: number, command: string[]): Promise<number> {
  if (launchedWorldSize() > 1)
    throw new LmfError('bad_argument', '--nproc was given to a process that mpirun already started', {
      hint: 'use either `mpirun -np N lmf train …` or `lmf train --nproc N …`, not both',
    });
  if (spawnSync('mpirun', ['--version'], { stdio: 'ignore' }).status !== 0)
    throw new LmfError('mpi_missing', 'mpirun (Open MPI) is not installed', {
      hint: 'install it (Debian: apt-get install openmpi-bin libopenmpi-dev) and rebuild: `node scripts/build.mjs native`',
    });
  const self = [...process.execArgv, process.argv[1], ...command];
  const mpirunArgs = [
    '-np',
    String(nproc),
    // the ranks share this machine's CPUs out themselves (data-parallel.ts), however many are asked for
    '--bind-to',
    'none',
    '--oversubscribe',
    ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []),
    process.execPath,
    ...self,
  ];
  const child = spawn('mpirun', mpirunArgs, { stdio: 'inherit', detached: true });
  const forward = () => child.kill('SIGUSR2');
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    return await new Promise<number>((resolve) =>
      child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0))),
    );
  } finally {
    process.removeListener('SIGINT', forward);
    process.removeListener('SIGTERM', forward);
  }
}
