// The only file that loads the native addon, and the typed declaration of
// every entry point it exports (native/addon/*_binding.cc). It is loaded
// lazily, on first use, so importing lmkernels never fails; when no binary
// loads, the error says the platform, what was tried and what to run.
//
// A new native entry point is declared here, in NativeAddon, and listed in
// NATIVE_ENTRY_POINTS (the compiler checks the two agree; test/native.test.ts
// checks the addon exports exactly these names).
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * A handle on a native tensor: a number naming an entry of this thread's
 * tensor table (native/addon/tensor_handle.h). Its dtype, device and shape
 * are in the table's metadata array (tensorMeta()).
 */
export type NativeHandle = number;

/** A tensor as the addon returns it: its handle. */
export type NativeTensor = NativeHandle;

/** The metadata array of this thread's tensor handles (native/addon/tensor_handle.h). */
export interface NativeTensorMeta {
  table: ArrayBuffer;
  /** Numbers per handle: dtype, device (-1 for the CPU, else the CUDA index), rank, then the sizes. */
  stride: number;
  /** Sizes kept in the array; a larger rank is read with tensorShape(). */
  dims: number;
  /** dtype names by their number in the array. */
  dtypes: string[];
}

export interface NativeMemory {
  tensors: number;
  bytesInUse: { cpu: number; cuda: number[] };
  bytesReserved: { cpu: number; cuda: number[] };
}

export interface NativeBackendInfo {
  version: string;
  cpu: { threads: number };
  cuda: {
    compiled: boolean;
    available: boolean;
    reason?: string;
    runtimeVersion?: number;
    driverVersion?: number;
    devices: { index: number; name: string; computeCapability: string; totalMemory: number }[];
  };
}

export interface NativeGemmInfo {
  cpu: 'openblas' | 'builtin';
  cuda: 'cublas' | 'builtin' | 'unavailable';
  cpuLibrary: string;
  cpuIsa: string;
}

/** The process world as dist.init left it (distWorld). */
export interface NativeDistWorld {
  initialized: boolean;
  rank: number;
  worldSize: number;
  localRank: number;
  backend: 'none' | 'mpi' | 'nccl';
  /** MPI's version line when MPI runs, else ''. */
  library: string;
  /** The MPI launcher's variable found in the environment, or ''. */
  launcher: string;
}

export type HostArray = Float64Array | Float32Array | Int32Array;

type H = NativeHandle;
type T = NativeTensor;
/** The result of a dense binding with one output: its handle. */
type Out = T;

/** Options of the goldfish rule as the losses bindings read them. */
export interface NativeGoldfish {
  k?: number;
  strategy?: string;
  contextWidth?: number;
  seed?: number;
  startPosition?: number;
  hashTokens?: H;
}

export interface NativeFamBlockOptions {
  q: H;
  k: H;
  v: H;
  famK?: H;
  famV?: H;
  blockSize: number;
  memoryBlocks: number;
  scale?: number;
}

export interface NativeFamMemoryOptions {
  famQ: H;
  famK: H;
  famV: H;
  blockK: H;
  blockV: H;
  scale?: number;
}

/** What a fam backward reads of its forward. */
export interface NativeFamForwardResults {
  out: H;
  lse: H;
  gOut: H;
}

/** AdamW's hyperparameters (adamwOptions returns them with the core's defaults). */
export interface NativeAdamwHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** Shape, dtype (absent: the core's default) and device of a creation call. */
export interface NativePlacement {
  shape: readonly number[];
  dtype?: string;
  device: string;
}

/** The options losses.orpo and losses.linearOrpo share. */
export interface NativeOrpoCommonOptions {
  chosenLabels: H;
  rejectedLabels: H;
  nllLabels?: H;
  lambda?: number;
  ignoreIndex?: number;
  goldfish?: NativeGoldfish;
  computeGrad?: boolean;
  gradScale?: number;
}

/** What losses.orpo and losses.linearOrpo return besides their gradients. */
export interface NativeOrpoResults {
  loss: T;
  nllLoss: T;
  orLoss: T;
  chosenLogps: T;
  rejectedLogps: T;
  logOdds: T;
  metrics: {
    rewardsChosen: T;
    rewardsRejected: T;
    rewardsAccuracy: T;
    rewardsMargin: T;
    logOddsRatio: T;
    logOddsChosen: T;
  };
}

export interface NativeGoldfishMaskOptions extends NativeGoldfish {
  labels: H;
  ignoreIndex?: number;
}

export interface NativeGoldfishLossOptions extends NativeGoldfish {
  logits: H;
  labels: H;
  ignoreIndex?: number;
  computeGrad?: boolean;
  gradScale?: number;
}

/** The addon's exports, with their types. */
export interface NativeAddon {
  // ---- backend, tensors, memory (addon.cc, tensor_binding.cc) ----
  // Values the core checks and defaults pass through as `unknown` where the
  // public API accepts anything (the native layer checks their JS type).
  backendInfo(): NativeBackendInfo;
  release(handle: H): void;
  tensorMeta(): NativeTensorMeta;
  tensorShape(handle: H): number[];
  empty(o: NativePlacement): T;
  full(o: NativePlacement & { fn: string; value: number }): T;
  arange(o: { n: number; dtype?: string; device: string }): T;
  manualSeed(o: { seed: number }): void;
  rand(o: NativePlacement & { seed?: number; low?: number; high?: number }): T;
  randn(o: NativePlacement & { seed?: number; mean?: number; std?: number }): T;
  fromHost(o: { data: HostArray; shape: readonly number[]; dtype?: string; device: string }): T;
  fromRaw(o: { bytes: Uint8Array; shape: readonly number[]; dtype: string; device: string }): T;
  toDtype(o: { x: H; dtype: string }): T;
  toDevice(o: { x: H; device: string }): T;
  clone(handle: H): T;
  reshape(o: { x: H; shape: readonly number[] }): T;
  checkIndices(o: { values: H; limit: number }): T;
  read(handle: H): Promise<HostArray>;
  readSync(handle: H): HostArray;
  readRaw(handle: H): Uint8Array;
  synchronize(o: { device: string }): Promise<void>;
  /** The usable device a name names ('cuda' reads 'cuda:0'); TypeError naming fn/arg otherwise. */
  checkDevice(o: { device: string; fn: string; arg: string }): string;
  memory(): NativeMemory;
  emptyCache(): void;

  // ---- wkv4 (wkv4_binding.cc) ----
  wkv4Forward(o: { timeDecay: H; timeFirst: H; k: H; v: H; state?: H }): { y: T; state: T };
  wkv4Backward(o: { timeDecay: H; timeFirst: H; k: H; v: H; state?: H; y: H; gy: H; gState?: H }): {
    gTimeDecay: T;
    gTimeFirst: T;
    gk: T;
    gv: T;
    gState?: T;
  };
  wkv4Step(o: { timeDecay: H; timeFirst: H; k: H; v: H; state: H }): { y: T; state: T };

  // ---- fam (fam_binding.cc) ----
  famBlockAttention(o: NativeFamBlockOptions): { out: T; lse: T };
  famBlockAttentionBackward(o: NativeFamBlockOptions & NativeFamForwardResults): {
    gq: T;
    gk: T;
    gv: T;
    gFamK?: T;
    gFamV?: T;
  };
  famMemoryAttention(o: NativeFamMemoryOptions): { out: T; lse: T };
  famMemoryAttentionBackward(o: NativeFamMemoryOptions & NativeFamForwardResults): {
    gFamQ: T;
    gFamK: T;
    gFamV: T;
    gBlockK: T;
    gBlockV: T;
  };

  // ---- losses (losses_binding.cc) ----
  lossesCrossEntropy(o: {
    logits: H;
    labels: H;
    ignoreIndex?: number;
    reduction?: string;
    weights?: H;
    computeGrad?: boolean;
    gradScale?: number;
  }): { loss: T; lse: T; gradLogits?: T };
  lossesGoldfishMask(o: NativeGoldfishMaskOptions): T;
  lossesGoldfishLoss(o: NativeGoldfishLossOptions): {
    loss: T;
    gradLogits?: T;
    lossAllTokens: T;
    lossDroppedTokens: T;
    supervisedTokens: T;
    keptTokens: T;
  };
  lossesOrpo(
    o: NativeOrpoCommonOptions & { chosenLogits: H; rejectedLogits: H },
  ): NativeOrpoResults & { gradChosenLogits?: T; gradRejectedLogits?: T };
  lossesShiftLabels(o: { inputIds: H; ignoreIndex?: number }): T;
  lossesLinearCrossEntropy(o: {
    hidden: H;
    weight: H;
    bias?: H;
    labels: H;
    ignoreIndex?: number;
    reduction?: string;
    weights?: H;
    goldfish?: NativeGoldfish;
    computeGrad?: boolean;
    gradScale?: number;
    chunkSize?: number;
  }): {
    loss: T;
    lse: T;
    gradHidden?: T;
    gradWeight?: T;
    gradBias?: T;
    lossAllTokens?: T;
    lossDroppedTokens?: T;
    supervisedTokens?: T;
    keptTokens?: T;
  };
  lossesLinearOrpo(
    o: NativeOrpoCommonOptions & { chosenHidden: H; rejectedHidden: H; weight: H; bias?: H; chunkSize?: number },
  ): NativeOrpoResults & { gradChosenHidden?: T; gradRejectedHidden?: T; gradWeight?: T; gradBias?: T };

  // ---- dense kernels (dense_binding.cc) ----
  denseBinary(o: { op: string; a: H; b: H }): Out;
  denseBinaryBackward(o: { op: string; a: H; b: H; gy: H }): { ga: T; gb: T };
  denseScalarOp(o: { op: string; x: H; s: number }): Out;
  denseUnary(o: { op: string; x: H }): Out;
  denseUnaryBackward(o: { op: string; x?: H; y?: H; gy: H }): Out;
  denseFill(o: { x: H; value: number }): void;
  denseAddInPlace(o: { target: H; src: H; alpha?: number }): void;
  denseCopyInto(o: { target: H; src: H }): void;
  denseSum(o: { x: H; dims: readonly number[]; keepDim?: boolean }): Out;
  denseSumToShape(o: { x: H; shape: readonly number[] }): Out;
  denseExpandTo(o: { x: H; shape: readonly number[] }): Out;
  denseMatmul(o: { a: H; b: H; transA?: boolean; transB?: boolean }): Out;
  gemmInfo(): NativeGemmInfo;
  setGemmBackend(o: { backend: string }): void;
  denseLayerNorm(o: { x: H; weight?: H; bias?: H; eps?: number }): { y: T; mean: T; rstd: T };
  denseLayerNormBackward(o: { x: H; weight?: H; mean: H; rstd: H; gy: H; hasBias: boolean }): {
    gx: T;
    gWeight?: T;
    gBias?: T;
  };
  denseRmsNorm(o: { x: H; weight?: H; eps?: number }): { y: T; rstd: T };
  denseRmsNormBackward(o: { x: H; weight?: H; rstd: H; gy: H }): { gx: T; gWeight?: T };
  denseEmbedding(o: { weight: H; ids: H }): Out;
  denseEmbeddingBackward(o: { gOut: H; ids: H; numEmbeddings: number }): Out;
  denseRope(o: { x: H; positions: H; base?: number; inverse?: boolean }): Out;
  denseTokenShift(o: { x: H }): Out;
  denseTokenShiftBackward(o: { g: H }): Out;
  denseConcat(o: { xs: H[]; dim: number }): Out;
  denseSlice(o: { x: H; dim: number; start: number; end: number }): Out;
  denseSliceBackward(o: { g: H; inputShape: readonly number[]; dim: number; start: number; end: number }): Out;
  densePermute(o: { x: H; dims: readonly number[] }): Out;
  /** AdamW's hyperparameters with the core's defaults, checked (lr required). */
  adamwOptions(o: Partial<NativeAdamwHyper>): NativeAdamwHyper;
  denseAdamwStep(o: NativeAdamwHyper & { param: H; grad: H; expAvg: H; expAvgSq: H; step: number }): void;
  denseGradNormClip(o: { grads: H[]; maxNorm: number }): { norm: T };

  // ---- dist (dist_binding.cc) ----
  distInit(o: { backend?: string }): Promise<void>;
  distWorld(): NativeDistWorld;
  /** The collective libraries that open here: their names, or '' and why not. */
  distLibraries(): { mpi: string; mpiMissing: string; nccl: string; ncclMissing: string };
  distFinalize(): Promise<void>;
  /** Blocks until MPI is finalized when it runs (process exit). */
  distShutdown(): void;
  distAllReduce(o: { t: H; op?: string }): void;
  distBroadcast(o: { t: H; root?: number }): void;
  distAllGather(o: { input: H; output: H }): void;
  distReduceScatter(o: { input: H; output: H; op?: string }): void;
  distBarrier(): Promise<void>;
}

// Every key of NativeAddon exactly once: `satisfies` rejects a missing or an
// extra name at compile time.
const entryPoints = {
  backendInfo: true,
  release: true,
  tensorMeta: true,
  tensorShape: true,
  empty: true,
  full: true,
  arange: true,
  manualSeed: true,
  rand: true,
  randn: true,
  fromHost: true,
  toDtype: true,
  toDevice: true,
  clone: true,
  reshape: true,
  checkIndices: true,
  read: true,
  readSync: true,
  readRaw: true,
  fromRaw: true,
  synchronize: true,
  checkDevice: true,
  memory: true,
  emptyCache: true,
  wkv4Forward: true,
  wkv4Backward: true,
  wkv4Step: true,
  famBlockAttention: true,
  famBlockAttentionBackward: true,
  famMemoryAttention: true,
  famMemoryAttentionBackward: true,
  lossesCrossEntropy: true,
  lossesGoldfishMask: true,
  lossesGoldfishLoss: true,
  lossesOrpo: true,
  lossesShiftLabels: true,
  lossesLinearCrossEntropy: true,
  lossesLinearOrpo: true,
  denseBinary: true,
  denseBinaryBackward: true,
  denseScalarOp: true,
  denseUnary: true,
  denseUnaryBackward: true,
  denseFill: true,
  denseAddInPlace: true,
  denseCopyInto: true,
  denseSum: true,
  denseSumToShape: true,
  denseExpandTo: true,
  denseMatmul: true,
  gemmInfo: true,
  setGemmBackend: true,
  denseLayerNorm: true,
  denseLayerNormBackward: true,
  denseRmsNorm: true,
  denseRmsNormBackward: true,
  denseEmbedding: true,
  denseEmbeddingBackward: true,
  denseRope: true,
  denseTokenShift: true,
  denseTokenShiftBackward: true,
  denseConcat: true,
  denseSlice: true,
  denseSliceBackward: true,
  densePermute: true,
  adamwOptions: true,
  denseAdamwStep: true,
  denseGradNormClip: true,
  distInit: true,
  distWorld: true,
  distLibraries: true,
  distFinalize: true,
  distShutdown: true,
  distAllReduce: true,
  distBroadcast: true,
  distAllGather: true,
  distReduceScatter: true,
  distBarrier: true,
} as const satisfies Record<keyof NativeAddon, true>;

/** The names of every native entry point, sorted. */
export const NATIVE_ENTRY_POINTS: readonly (keyof NativeAddon)[] = (
  Object.keys(entryPoints) as (keyof NativeAddon)[]
).sort();

function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'package.json');
    if (fs.existsSync(candidate)) {
      try {
        if (JSON.parse(fs.readFileSync(candidate, 'utf8')).name === 'lmkernels') return dir;
      } catch {
        // keep looking
      }
    }
    dir = path.dirname(dir);
  }
  return path.join(__dirname, '..', '..');
}

/** node-gyp-build: loads the binary that fits this platform; .path() names it or throws when there is none. */
interface BinaryLoader {
  (dir: string): unknown;
  path(dir: string): string;
}

/**
 * @internal What to tell a user whose binary does not load. `file` is the
 * binary that was found for this platform (undefined: none). Without one, the
 * package's install script, which builds it when no prebuilt binary fits, has
 * not run: npm 11 and pnpm hold dependencies' install scripts back until the
 * project approves them.
 */
export function loadFailureMessage(root: string, file: string | undefined, reason: string): string {
  const platform = `${process.platform}-${process.arch} (Node ${process.version}, N-API 8)`;
  const build = `cd ${JSON.stringify(root)} && npx cmake-js compile`;
  if (file === undefined) {
    return (
      `lmkernels: no native binary for ${platform} in ${root}: no prebuilt binary fits this platform and ` +
      'none was built here: the install script that builds it has not run (npm 11 and pnpm hold back ' +
      "dependencies' install scripts until they are approved) or it failed. To fix it, in your project run\n" +
      '  npm approve-scripts lmkernels && npm rebuild lmkernels     (npm; for npx or npm install -g, add --allow-scripts=lmkernels)\n' +
      '  pnpm approve-builds                                       (pnpm)\n' +
      `or build it by hand, with a C++17 compiler and CMake >= 3.24:\n  ${build}\n` +
      'then check with `npx lmkernels doctor`.'
    );
  }
  return (
    `lmkernels: the native binary ${file} does not load on ${platform}: ${reason}. ` +
    `Build one for this machine, with a C++17 compiler and CMake >= 3.24:\n  ${build}\n` +
    'then check with `npx lmkernels doctor`.'
  );
}

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (addon) return addon;
  const root = packageRoot();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const load = require('node-gyp-build') as BinaryLoader;
  try {
    addon = load(root) as NativeAddon;
  } catch (cause) {
    let file: string | undefined;
    try {
      file = load.path(root);
    } catch {
      file = undefined;
    }
    const reason = cause instanceof Error ? cause.message.split('\n')[0]! : String(cause);
    throw new Error(loadFailureMessage(root, file, reason), { cause });
  }
  return addon;
}
