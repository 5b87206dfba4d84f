// Memory accounting and the pool.
import { native } from './native';

export interface MemoryInfo {
  /** Live (not disposed, not collected) Tensor objects. */
  tensors: number;
  bytesInUse: { cpu: number; cuda: number[] };
  bytesReserved: { cpu: number; cuda: number[] };
}

export function memory(): MemoryInfo {
  return native().memory();
}

/** Returns pooled, unused memory to the system (CPU) or the driver (CUDA). */
export function emptyCache(): void {
  native().emptyCache();
}
