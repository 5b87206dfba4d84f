// The only file that loads the native addon. It is loaded lazily, on first
// use, so importing lmkernels never fails; when no binary loads, the error
// says the platform, what was tried and what to do.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A tensor as the addon returns it. */
export interface NativeTensor {
  handle: unknown;
  shape: number[];
  dtype: string;
  device: string;
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

export type HostArray = Float64Array | Float32Array | Int32Array;

/** The addon's typed interface (native/addon). */
export interface NativeAddon {
  backendInfo(): NativeBackendInfo;
  release(handle: unknown): void;
  empty(shape: readonly number[], dtype: string, device: string): NativeTensor;
  full(shape: readonly number[], value: number, dtype: string, device: string, fn: string): NativeTensor;
  arange(n: number, dtype: string, device: string): NativeTensor;
  manualSeed(seed: number): void;
  rand(
    shape: readonly number[],
    dtype: string,
    device: string,
    seed: number | undefined,
    low: number,
    high: number,
  ): NativeTensor;
  randn(
    shape: readonly number[],
    dtype: string,
    device: string,
    seed: number | undefined,
    mean: number,
    std: number,
  ): NativeTensor;
  fromHost(data: HostArray, shape: readonly number[], dtype: string, device: string): NativeTensor;
  toDtype(handle: unknown, dtype: string): NativeTensor;
  toDevice(handle: unknown, device: string): NativeTensor;
  clone(handle: unknown): NativeTensor;
  reshape(handle: unknown, shape: readonly number[]): NativeTensor;
  checkIndices(handle: unknown, limit: number): NativeTensor;
  read(handle: unknown): Promise<HostArray>;
  readSync(handle: unknown): HostArray;
  readRaw(handle: unknown): Uint8Array;
  fromRaw(bytes: Uint8Array, shape: readonly number[], dtype: string, device: string): NativeTensor;
  synchronize(device: string): Promise<void>;
  memory(): NativeMemory;
  emptyCache(): void;
  [name: string]: unknown;
}

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

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (addon) return addon;
  const root = packageRoot();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const load = require('node-gyp-build') as (dir: string) => unknown;
  try {
    addon = load(root) as NativeAddon;
  } catch (cause) {
    const tried = [
      process.env.PREBUILDS_ONLY ? null : path.join(root, 'build', 'Release', 'lmkernels.node'),
      path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, '*.node'),
    ].filter(Boolean);
    const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
    throw new Error(
      `lmkernels: no native binary loads on ${process.platform}-${process.arch} (Node ${process.version}, ` +
        `N-API 8). Tried: ${tried.join(', ')}. Loader said: ${reason}. ` +
        'To fix: reinstall so the prebuilt binary is fetched with the package (`npm install lmkernels`), ' +
        'or build from source with a C++17 compiler and CMake >= 3.24 (`npx cmake-js compile` in node_modules/lmkernels); ' +
        'then run `npx lmkernels doctor`.',
      { cause },
    );
  }
  return addon;
}
