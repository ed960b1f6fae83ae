/**
 * The processes of one training job. Started by mpirun (or Kubeflow's MPI Operator, which runs mpirun), a
 * process finds the world in Open MPI's environment (OMPI_COMM_WORLD_SIZE); started by Slurm's srun with PMIx,
 * in Slurm's (SLURM_NTASKS beside PMIX_RANK). It joins the world through build/lmf_mpi.node; started alone, the
 * world is this process and every collective is the identity.
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
  /** each rank's chunk of the arrays taken end to end, to every rank */
  gather(arrays: Float32Array[]): Ticket;
  /** each rank's chunk to root: root passes the whole arrays (its own chunk in place), the others their chunk alone */
  gatherToRoot(arrays: Float32Array[], root: number): Ticket;
  /** root's values of the arrays into every rank's */
  broadcast(arrays: Float32Array[], root: number): Ticket;
  wait(ticket: Ticket): void;
  /** in place: the sum over ranks, added in rank order (the same bits on every rank) */
  sumScalars(values: Float64Array): void;
  /** every rank's bytes (all of one length), in rank order */
  allgatherBytes(bytes: Uint8Array): Uint8Array[];
  barrier(): void;
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
  gather(arrays: Float32Array[]): number;
  gatherToRoot(arrays: Float32Array[], root: number): number;
  broadcast(arrays: Float32Array[], root: number): number;
  wait(ticket: number): void;
  sumScalars(values: Float64Array): void;
  allgatherBytes(bytes: Uint8Array): Uint8Array;
  barrier(): void;
  finalize(): void;
}

const alone: World = {
  rank: 0,
  size: 1,
  localSize: 1,
  isMain: true,
  reduce: () => 0,
  gather: () => 0,
  gatherToRoot: () => 0,
  broadcast: () => 0,
  wait: () => {},
  sumScalars: () => {},
  allgatherBytes: (bytes) => [bytes],
  barrier: () => {},
  finalize: () => {},
};

let joined: World | null = null;

/** The size of the world this process was launched into, from the launcher's environment (1 when alone). */
export function launchedWorldSize(env: NodeJS.ProcessEnv = process.env): number {
  const srun = env.PMIX_RANK !== undefined ? env.SLURM_NTASKS : undefined;
  const size = Number(env.OMPI_COMM_WORLD_SIZE ?? srun ?? 1);
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
    gather: (arrays) => mpi.gather(arrays),
    gatherToRoot: (arrays, root) => mpi.gatherToRoot(arrays, root),
    broadcast: (arrays, root) => mpi.broadcast(arrays, root),
    wait: (ticket) => mpi.wait(ticket),
    sumScalars: (values) => mpi.sumScalars(values),
    allgatherBytes(bytes) {
      const all = mpi.allgatherBytes(bytes);
      return Array.from({ length: info.size }, (_, r) => all.subarray(r * bytes.length, (r + 1) * bytes.length));
    },
    barrier: () => mpi.barrier(),
    finalize: () => mpi.finalize(),
  };
}
