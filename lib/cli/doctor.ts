// `npx lmkernels doctor`: what the backend found on this machine.
import { backendInfo } from '../backend';
import { defaultDevice } from '../device';
import { native } from '../native';

function formatBytes(n: number): string {
  return `${(n / 2 ** 30).toFixed(1)} GiB`;
}

function table(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n');
}

export function doctor(): number {
  let info;
  try {
    info = backendInfo();
  } catch (error) {
    console.error((error as Error).message);
    return 1;
  }
  const version = (v?: number) => (v ? `${Math.floor(v / 1000)}.${(v % 1000) / 10}` : 'none');
  const rows: [string, string][] = [
    ['lmkernels', info.version],
    ['node', `${process.version} (${process.platform}-${process.arch})`],
    ['cpu threads', String(info.cpu.threads)],
    ['cuda compiled', String(info.cuda.compiled)],
    ['cuda available', String(info.cuda.available)],
  ];
  if (info.cuda.reason) rows.push(['cuda reason', info.cuda.reason]);
  if (info.cuda.compiled) {
    rows.push(['cuda runtime', version(info.cuda.runtimeVersion)]);
    rows.push(['cuda driver', version(info.cuda.driverVersion)]);
  }
  for (const d of info.cuda.devices) {
    rows.push([
      `cuda:${d.index}`,
      `${d.name}, sm_${d.computeCapability.replace('.', '')}, ${formatBytes(d.totalMemory)}`,
    ]);
  }
  rows.push(['gemm (cpu)', info.gemm.cpu + (info.gemm.cpuLibrary ? ` (${info.gemm.cpuLibrary})` : '')]);
  rows.push(['gemm (cuda)', info.gemm.cuda]);
  // The collective libraries dist opens at run time (docs/api.md "Distributed").
  const libraries = native().distLibraries();
  rows.push(['mpi', libraries.mpi || 'not found (apt-get install openmpi-bin libopenmpi-dev)']);
  rows.push(['nccl', libraries.nccl || 'not found (only needed for CUDA tensors on several GPUs)']);
  rows.push(['default device', defaultDevice().toString()]);
  console.log('lmkernels doctor\n' + table(rows));
  return 0;
}
