// backendInfo(): what the native backend found on this machine (CPU threads,
// CUDA and its devices, which GEMM runs), as `npx lmkernels doctor` prints it.
import { nativeBackendInfo } from './device';
import { native, type NativeBackendInfo } from './native';

export interface BackendInfo {
  version: string;
  cpu: { threads: number };
  cuda: NativeBackendInfo['cuda'];
  /** Which GEMM runs: OpenBLAS/cuBLAS when they load at run time, else our kernels. */
  gemm: { cpu: 'openblas' | 'builtin'; cuda: 'cublas' | 'builtin' | 'unavailable'; cpuLibrary?: string };
}

export function backendInfo(): BackendInfo {
  const i = nativeBackendInfo();
  const gemm = native().gemmInfo();
  return {
    version: i.version,
    cpu: { ...i.cpu },
    cuda: { ...i.cuda, devices: i.cuda.devices.map((d) => ({ ...d })) },
    gemm: { cpu: gemm.cpu, cuda: gemm.cuda, ...(gemm.cpuLibrary ? { cpuLibrary: gemm.cpuLibrary } : {}) },
  };
}
