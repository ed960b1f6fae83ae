/**
 * The processes of one training job. Started by mpirun, Slurm's srun or Kubeflow's MPI Operator, a process
 * finds the world in Open MPI's environment (OMPI_COMM_WORLD_SIZE) and joins it through build/lmf_mpi.node;
 * started alone, the world is this process and every collective is the identity.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { LmfError } from '../errors.js';
import { packageRoot } from '../version.js';

/** A collective running on the communication thread; wait() for it before touching its buffers. */
export type Ticket = number;

export interface World {
  rank: number;
  size: number;
  /** processes of this job on this machine (threads are shared out among them) */
  localSize: number;
  /** rank 0: the one that writes logs, checkpoints and outputs */
  isMain: boolean;
  /** the sum over ranks of the arrays taken end to end: everywhere (allreduce) or only each rank's chunk of them */
  reduce(arrays: Float32Array[], allreduce: boolean): Ticket;
  /** each rank's chunk of the arrays taken end to end, to every rank (root -1) or to root */
  gather(arrays: Float32Array[], root: number): Ticket;
  wait(ticket: Ticket): void;
  /** in place: the sum over ranks, added in rank order (the same bits on every rank) */
  sumScalars(values: Float64Array): void;
  /** every rank's bytes (all of one length), in rank order */
  allgatherBytes(bytes: Uint8Array): Uint8Array[];
  barrier(): void;
  /** ends every process of the job: for an error met on this rank alone */
  abort(code: number): void;
  /** waits for the collectives in flight and leaves the world */
  finalize(): void;
}

/** Element range [start, end) of chunk r when n elements are cut among `size` ranks (as lmf_mpi cuts them). */
export function chunkBounds(n: number, r: number, size: number): [number, number] {
  return [Math.floor((n * r) / size), Math.floor((n * (r + 1)) / size)];
}

interface MpiAddon {
  init(): { rank: number; size: number; localRank: number; localSize: number; processor: string };
  reduce(arrays: Float32Array[], allreduce: boolean): number;
  gather(arrays: Float32Array[], root: number): number;
  wait(ticket: number): void;
  sumScalars(values: Float64Array): void;
  allgatherBytes(bytes: Uint8Array): Uint8Array;
  barrier(): void;
  abort(code: number): void;
  finalize(): void;
}

const alone: World = {
  rank: 0,
  size: 1,
  localSize: 1,
  isMain: true,
  reduce: () => 0,
  gather: () => 0,
  wait: () => {},
  sumScalars: () => {},
  allgatherBytes: (bytes) => [bytes],
  barrier: () => {},
  abort: (code) => process.exit(code),
  finalize: () => {},
};

let joined: World | null = null;

/** The size of the world this process was launched into, from the launcher's environment (1 when alone). */
export function launchedWorldSize(env: NodeJS.ProcessEnv = process.env): number {
  const size = Number(env.OMPI_COMM_WORLD_SIZE ?? 1);
  return Number.isInteger(size) && size > 0 ? size : 1;
}

/** The world if this process joined one (the CLI then finalises or aborts it), else null. */
export function joinedWorld(): World | null {
  return joined;
}

/** This process's world, joined on first use (MPI is initialised once per process). */
export function world(): World {
  if (joined) return joined;
  joined = launchedWorldSize() > 1 ? joinMpi() : alone;
  return joined;
}

function joinMpi(): World {
  const file = path.join(packageRoot, 'build', 'lmf_mpi.node');
  if (!existsSync(file)) {
    throw new LmfError('mpi_missing', 'this process was started by mpirun, but LMFactory was built without Open MPI', {
      file,
      hint: 'install Open MPI (Debian: apt-get install libopenmpi-dev openmpi-bin) and rebuild: `node scripts/build.mjs native`',
    });
  }
  const mpi = createRequire(import.meta.url)(file) as MpiAddon;
  const info = mpi.init();
  return {
    rank: info.rank,
    size: info.size,
    localSize: info.localSize,
    isMain: info.rank === 0,
    reduce: (arrays, allreduce) => mpi.reduce(arrays, allreduce),
    gather: (arrays, root) => mpi.gather(arrays, root),
    wait: (ticket) => mpi.wait(ticket),
    sumScalars: (values) => mpi.sumScalars(values),
    allgatherBytes(bytes) {
      const all = mpi.allgatherBytes(bytes);
      return Array.from({ length: info.size }, (_, r) => all.subarray(r * bytes.length, (r + 1) * bytes.length));
    },
    barrier: () => mpi.barrier(),
    abort: (code) => mpi.abort(code),
    finalize: () => mpi.finalize(),
  };
}
