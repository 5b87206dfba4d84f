// Distributed data parallel (`dist`, docs/api.md "Distributed"): one process
// per device, started by MPI's launcher; collectives by MPI (CPU tensors) and
// NCCL (CUDA tensors), both opened at run time by the native core, queued on
// the tensor's stream in order with the other ops. Without a launcher,
// dist.init() gives a world of one and the collectives are identities.
import { handle } from '../kernels/common';
import { native } from '../native';
import type { Tensor } from '../tensor';
import { checkOptions } from '../validate';

export type DistBackend = 'auto' | 'mpi' | 'nccl';
export type DistReduceOp = 'sum' | 'mean' | 'max' | 'min';

/** This process in the world: what dist.init resolves with. */
export interface DistWorld {
  rank: number;
  worldSize: number;
  /** The rank among the processes on this machine (pick the GPU with it). */
  localRank: number;
  /** 'none' in a world of one that no launcher started (nothing opened). */
  backend: 'none' | 'mpi' | 'nccl';
}

export interface DistInitOptions {
  backend?: DistBackend;
}

let exitHookInstalled = false;

// MPI wants every process to call MPI_Finalize; a process that ends cleanly
// without dist.finalize() does so on exit. A failing process (exit code not 0)
// does not, so that mpirun sees the failure and ends the other ranks at once.
function finalizeOnCleanExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', (code) => {
    if (code === 0) native().distShutdown();
  });
}

/**
 * Joins the world. In a process an MPI launcher started (mpirun, `npx
 * lmkernels launch`), opens MPI (Open MPI >= 4, libmpi.so.40) and, for CUDA
 * tensors, NCCL; rejects with an Error naming the missing library and how to
 * install it. In any other process: a world of one (rank 0, worldSize 1).
 */
export async function init(opts?: DistInitOptions): Promise<DistWorld> {
  const o = checkOptions(opts, 'dist.init', ['backend']);
  await native().distInit({ backend: o.backend as string | undefined });
  const w = native().distWorld();
  // Two init() calls at once share one start; the first reports its failure.
  if (!w.initialized) throw new Error('dist.init: the world did not start (an earlier dist.init() call reported why)');
  if (w.backend !== 'none') finalizeOnCleanExit();
  return { rank: w.rank, worldSize: w.worldSize, localRank: w.localRank, backend: w.backend };
}

/** This process's rank (0 before dist.init). */
export function rank(): number {
  return native().distWorld().rank;
}

/** The number of processes (1 before dist.init). */
export function worldSize(): number {
  return native().distWorld().worldSize;
}

/** Whether dist.init has completed (and dist.finalize has not been called since). */
export function isInitialized(): boolean {
  return native().distWorld().initialized;
}

/** Shuts MPI (and NCCL) down after all queued work; MPI cannot start again in this process. */
export async function finalize(): Promise<void> {
  await native().distFinalize();
}

/**
 * In place: t = op over ranks of t ('sum' by default; 'mean' is the sum
 * divided by worldSize). Queued on t's stream; returns t. Calls that differ
 * across ranks (shape, dtype, op) are an Error on every rank at the next
 * sync, and no data moves.
 */
export function allReduce(t: Tensor, opts?: { op?: DistReduceOp }): Tensor {
  const fn = 'dist.allReduce';
  const o = checkOptions(opts, fn, ['op']);
  native().distAllReduce({ t: handle(t, fn, 't'), op: o.op as string | undefined });
  return t;
}

/** In place: t = the root rank's t (root 0 by default). Returns t. */
export function broadcast(t: Tensor, opts?: { root?: number }): Tensor {
  const fn = 'dist.broadcast';
  const o = checkOptions(opts, fn, ['root']);
  native().distBroadcast({ t: handle(t, fn, 't'), root: o.root as number | undefined });
  return t;
}

/**
 * output = every rank's input in rank order; output has shape
 * [worldSize, ...input.shape] or [worldSize * input.shape[0], ...input.shape.slice(1)].
 * Returns output.
 */
export function allGather(opts: { input: Tensor; output: Tensor }): Tensor {
  const fn = 'dist.allGather';
  if (opts === undefined) throw new TypeError(`${fn}: options must be an object`);
  const o = checkOptions(opts, fn, ['input', 'output'], 'options');
  native().distAllGather({ input: handle(o.input, fn, 'input'), output: handle(o.output, fn, 'output') });
  return o.output as Tensor;
}

/**
 * output = op over ranks of this rank's block of input (input shaped as
 * allGather's output); op 'sum' by default. Returns output.
 */
export function reduceScatter(opts: { input: Tensor; output: Tensor; op?: DistReduceOp }): Tensor {
  const fn = 'dist.reduceScatter';
  if (opts === undefined) throw new TypeError(`${fn}: options must be an object`);
  const o = checkOptions(opts, fn, ['input', 'output', 'op'], 'options');
  native().distReduceScatter({
    input: handle(o.input, fn, 'input'),
    output: handle(o.output, fn, 'output'),
    op: o.op as string | undefined,
  });
  return o.output as Tensor;
}

/** Resolves once every rank has reached it (after this process's earlier CPU work). */
export async function barrier(): Promise<void> {
  await native().distBarrier();
}

// The training side: data shards and gradient averaging (lib/distributed/{shard,gradients}.ts).
export { shardIndices } from './shard';
export type { ShardOptions } from './shard';
export { syncGradients } from './gradients';
