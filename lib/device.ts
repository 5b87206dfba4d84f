// Devices, the default device and backend information.
import { native, type NativeBackendInfo } from './native';

export type DeviceKind = 'cpu' | 'cuda';

export class Device {
  /** @internal */
  constructor(
    readonly kind: DeviceKind,
    readonly index: number,
  ) {}
  toString(): string {
    return this.kind === 'cpu' ? 'cpu' : `cuda:${this.index}`;
  }
}

export type DeviceSpec = 'cpu' | 'cuda' | `cuda:${number}` | Device;

const cpuDevice = new Device('cpu', 0);
const cudaDevices = new Map<number, Device>();

function cudaDevice(index: number): Device {
  let d = cudaDevices.get(index);
  if (!d) {
    d = new Device('cuda', index);
    cudaDevices.set(index, d);
  }
  return d;
}

/** Parses a device spec (without checking that it is usable). */
export function parseDevice(spec: unknown, fn: string, arg = 'device'): Device {
  if (spec instanceof Device) return spec.kind === 'cpu' ? cpuDevice : cudaDevice(spec.index);
  if (spec === 'cpu') return cpuDevice;
  if (spec === 'cuda') return cudaDevice(0);
  if (typeof spec === 'string') {
    const m = /^cuda:(\d+)$/.exec(spec);
    if (m) return cudaDevice(Number(m[1]));
  }
  throw new TypeError(`${fn}: ${arg} must be 'cpu', 'cuda', 'cuda:N' or a Device, got ${describe(spec)}`);
}

/** Parses and checks that the device can be used on this machine. */
export function usableDevice(spec: unknown, fn: string, arg = 'device'): Device {
  const device = parseDevice(spec, fn, arg);
  if (device.kind === 'cuda') {
    const info = native().backendInfo().cuda;
    if (!info.available) {
      throw new TypeError(`${fn}: ${arg} is ${device} but CUDA is not available (${info.reason ?? 'unknown reason'})`);
    }
    if (device.index >= info.devices.length) {
      throw new TypeError(`${fn}: ${arg} is ${device} but only ${info.devices.length} CUDA device(s) are present`);
    }
  }
  return device;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return `${typeof value} ${String(value)}`;
}

let cachedInfo: NativeBackendInfo | undefined;
function info(): NativeBackendInfo {
  cachedInfo ??= native().backendInfo();
  return cachedInfo;
}

export function cudaAvailable(): boolean {
  return info().cuda.available;
}

export function devices(): Device[] {
  const list = [cpuDevice];
  if (cudaAvailable()) for (const d of info().cuda.devices) list.push(cudaDevice(d.index));
  return list;
}

let explicitDefault: Device | undefined;

/** setDefaultDevice() if called, else LMK_DEVICE if set, else cuda:0 when usable, else cpu. */
export function defaultDevice(): Device {
  if (explicitDefault) return explicitDefault;
  const env = process.env.LMK_DEVICE;
  if (env) return usableDevice(env, 'defaultDevice', 'LMK_DEVICE');
  return cudaAvailable() ? cudaDevice(0) : cpuDevice;
}

export function setDefaultDevice(spec: DeviceSpec): void {
  explicitDefault = usableDevice(spec, 'setDefaultDevice');
}

/** Resolves once all work queued on the device has finished; rejects with its first error. */
export function synchronize(device?: DeviceSpec): Promise<void> {
  const d = device === undefined ? defaultDevice() : usableDevice(device, 'synchronize');
  return native().synchronize(d.toString());
}

export interface BackendInfo {
  version: string;
  cpu: { threads: number };
  cuda: NativeBackendInfo['cuda'];
  /** Which GEMM runs: OpenBLAS/cuBLAS when they load at run time, else our kernels. */
  gemm: { cpu: 'openblas' | 'builtin'; cuda: 'cublas' | 'builtin' | 'unavailable'; cpuLibrary?: string };
}

export function backendInfo(): BackendInfo {
  const i = native().backendInfo();
  const gemm = native().denseGemmInfo();
  return {
    version: i.version,
    cpu: { ...i.cpu },
    cuda: { ...i.cuda, devices: i.cuda.devices.map((d) => ({ ...d })) },
    gemm: { cpu: gemm.cpu, cuda: gemm.cuda, ...(gemm.cpuLibrary ? { cpuLibrary: gemm.cpuLibrary } : {}) },
  };
}
