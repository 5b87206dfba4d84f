// Devices, the default device and what CUDA offers here. Which names are
// devices and which devices are usable is decided by the native core; this
// file keeps the per-thread default device and the Device objects.
import { native, type NativeBackendInfo } from './native';
import { describe } from './validate';

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

/** @internal The Device of a name the native layer returned ('cpu', 'cuda:0'). */
export function deviceFromName(name: string): Device {
  return name === 'cpu' ? cpuDevice : cudaDevice(Number(name.slice('cuda:'.length)));
}

/** @internal The Device of a code in the native metadata array: -1 for the CPU, else the CUDA index. */
export function deviceFromCode(code: number): Device {
  return code < 0 ? cpuDevice : cudaDevice(code);
}

/**
 * @internal A device spec as the name the native layer reads: a Device's
 * name, or the string itself (the core parses it and says what is wrong).
 */
export function deviceName(spec: unknown, fn: string, arg = 'device'): string {
  if (spec instanceof Device) return spec.toString();
  if (typeof spec === 'string') return spec;
  throw new TypeError(`${fn}: ${arg} must be 'cpu', 'cuda', 'cuda:N' or a Device, got ${describe(spec)}`);
}

/** @internal The device a spec names, checked by the core to be usable on this machine. */
export function usableDevice(spec: unknown, fn: string, arg = 'device'): Device {
  return deviceFromName(native().checkDevice({ device: deviceName(spec, fn, arg), fn, arg }));
}

let cachedInfo: NativeBackendInfo | undefined;
/** @internal The native backend information (constant for the process). */
export function nativeBackendInfo(): NativeBackendInfo {
  cachedInfo ??= native().backendInfo();
  return cachedInfo;
}

export function cudaAvailable(): boolean {
  return nativeBackendInfo().cuda.available;
}

export function devices(): Device[] {
  const list = [cpuDevice];
  if (cudaAvailable()) for (const d of nativeBackendInfo().cuda.devices) list.push(cudaDevice(d.index));
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

/** @internal The name of `spec`, or of the default device when it is undefined. */
export function deviceOrDefault(spec: unknown, fn: string, arg = 'device'): string {
  return spec === undefined ? defaultDevice().toString() : deviceName(spec, fn, arg);
}

export function setDefaultDevice(spec: DeviceSpec): void {
  explicitDefault = usableDevice(spec, 'setDefaultDevice');
}

/** Resolves once all work queued on the device has finished; rejects with its first error. */
export function synchronize(device?: DeviceSpec): Promise<void> {
  return native().synchronize({ device: deviceOrDefault(device, 'synchronize') });
}
