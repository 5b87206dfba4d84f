// `npx lmkernels launch -n N [--hostfile FILE] script [args...]`: starts N processes of a script
// with Open MPI's mpirun (the library's collectives then find each other through MPI), passes
// their output through, and ends with a non-zero status naming the rank when one fails.
//
// What it adds to a plain `mpirun -n N node script`:
// - --oversubscribe when N exceeds this machine's cores (and no hostfile says where to run);
// - OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM) when run as root (containers, CI);
// - LMK_NUM_THREADS = max(1, floor(cores / N)) on this machine unless set, so the ranks do not
//   fight over cores;
// - `-x NAME` for the environment the library and Node read (LMK_*, NCCL_*, CUDA_VISIBLE_DEVICES,
//   PATH, LD_LIBRARY_PATH, NODE_OPTIONS, NODE_PATH, OPENBLAS_*/OMP_NUM_THREADS), so ranks on other
//   machines see it too;
// - TypeScript scripts (.ts, .mts, .cts) run by Node with tsx's loader (--import), one process
//   per rank (not tsx's own command, which would start a second process).
// Open MPI itself ends the whole job when a rank exits with a non-zero status, is killed, or
// calls MPI_Abort; its report is scanned for the rank, which the last line names.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError } from './args';

export const LAUNCH_USAGE = `usage: lmkernels launch -n N [--hostfile FILE] script [args...]

  -n, --procs N      processes (ranks) to start, one per device
  --hostfile FILE    Open MPI's hostfile: the machines and their slots (default: this machine)
  script [args...]   a .js/.mjs/.cjs script run by node, or .ts/.mts/.cts run by node with tsx;
                     it calls dist.init() (lmk.dist) and trains with its rank's share of the data;
                     or 'finetune' and its options: lmkernels finetune on N ranks
  Needs Open MPI >= 4 (mpirun) on every machine (Debian/Ubuntu: apt-get install openmpi-bin
  libopenmpi-dev); CUDA tensors also need NCCL (libnccl2). LMK_MPIRUN overrides the mpirun path.`;

/** Environment variables forwarded to every rank with `-x` (by name pattern). */
const FORWARDED =
  /^(LMK_|NCCL_|CUDA_VISIBLE_DEVICES$|PATH$|LD_LIBRARY_PATH$|NODE_OPTIONS$|NODE_PATH$|OPENBLAS_|OMP_NUM_THREADS$)/;
/** lmkernels commands that train data-parallel when launched. */
const LAUNCHABLE_COMMANDS = ['finetune'];
const TYPESCRIPT = /\.(ts|mts|cts)$/;

export interface LaunchPlan {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

interface LaunchOptions {
  procs: number;
  hostfile?: string;
  script: string;
  scriptArgs: string[];
}

function parseLaunch(argv: string[]): LaunchOptions | 'help' {
  let procs: number | undefined;
  let hostfile: string | undefined;
  let i = 0;
  const value = (flag: string): string => {
    const v = argv[++i];
    if (v === undefined) throw new UsageError(`lmkernels launch: ${flag} needs a value\n\n${LAUNCH_USAGE}`);
    return v;
  };
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') return 'help';
    if (a === '-n' || a === '--procs' || a === '-np') {
      const text = value(a);
      procs = Number(text);
      if (!Number.isInteger(procs) || procs < 1) {
        throw new UsageError(`lmkernels launch: ${a} must be a positive integer, got '${text}'`);
      }
    } else if (a === '--hostfile') hostfile = value(a);
    else if (a.startsWith('-')) throw new UsageError(`lmkernels launch: unknown option '${a}'\n\n${LAUNCH_USAGE}`);
    else break;
  }
  if (procs === undefined) throw new UsageError(`lmkernels launch: -n N is required\n\n${LAUNCH_USAGE}`);
  const script = argv[i];
  if (script === undefined) throw new UsageError(`lmkernels launch: a script to run is required\n\n${LAUNCH_USAGE}`);
  // `launch -n 2 finetune ...`: this package's own command (this file is dist/<format>/cli/launch.js).
  if (LAUNCHABLE_COMMANDS.includes(script) && !existsSync(script)) {
    return { procs, hostfile, script: path.join(__dirname, '..', 'cli.js'), scriptArgs: argv.slice(i) };
  }
  if (!existsSync(script)) throw new UsageError(`lmkernels launch: script ${script} does not exist`);
  if (hostfile !== undefined && !existsSync(hostfile)) {
    throw new UsageError(`lmkernels launch: hostfile ${hostfile} does not exist`);
  }
  return { procs, hostfile, script, scriptArgs: argv.slice(i + 1) };
}

/** The executable `name` on PATH, or undefined. */
function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** tsx's loader for `node --import`, found from the working directory first, then from lmkernels. */
function tsxLoader(): string {
  for (const from of [path.join(process.cwd(), 'package.json'), __filename]) {
    try {
      return pathToFileURL(createRequire(from).resolve('tsx')).href;
    } catch {
      // try the next place
    }
  }
  throw new UsageError('lmkernels launch: running a TypeScript script needs tsx (npm install --save-dev tsx)');
}

/** The mpirun command line and environment for a launch (exported for tests). */
export function launchPlan(
  options: LaunchOptions,
  env: NodeJS.ProcessEnv = process.env,
  cores = availableParallelism(),
): LaunchPlan {
  // Found on PATH but run by name: Open MPI takes an absolute path to mpirun as --prefix.
  const mpirun = env.LMK_MPIRUN ?? (onPath('mpirun', env) ? 'mpirun' : undefined);
  if (!mpirun) {
    throw new Error(
      'launch: mpirun was not found on PATH. Install Open MPI >= 4 on every machine ' +
        '(Debian/Ubuntu: sudo apt-get install openmpi-bin libopenmpi-dev; Fedora: sudo dnf install openmpi ' +
        'openmpi-devel, then module load mpi; macOS: brew install open-mpi), or set LMK_MPIRUN to its path',
    );
  }
  const runEnv: NodeJS.ProcessEnv = { ...env };
  const args = ['-n', String(options.procs)];
  if (options.hostfile !== undefined) args.push('--hostfile', options.hostfile);
  else {
    if (options.procs > cores) args.push('--oversubscribe');
    if (runEnv.LMK_NUM_THREADS === undefined) {
      runEnv.LMK_NUM_THREADS = String(Math.max(1, Math.floor(cores / options.procs)));
    }
  }
  if (typeof process.getuid === 'function' && process.getuid() === 0) {
    runEnv.OMPI_ALLOW_RUN_AS_ROOT = '1';
    runEnv.OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = '1';
  }
  for (const name of Object.keys(runEnv).sort()) if (FORWARDED.test(name)) args.push('-x', name);
  args.push(process.execPath);
  if (TYPESCRIPT.test(options.script)) args.push('--import', tsxLoader());
  args.push(options.script, ...options.scriptArgs);
  return { command: mpirun, args, env: runEnv };
}

/** What Open MPI's report says about the first rank that failed, if it says. */
export function failedRank(report: string): string | undefined {
  const signal = /process rank (\d+) with PID \d+ on node \S+ exited on signal (\d+) \(([^)]*)\)/.exec(report);
  if (signal) return `rank ${signal[1]} was killed by signal ${signal[2]} (${signal[3]})`;
  const exit = /Process name:\s*\[\[\d+,\d+\],(\d+)\]\s*Exit code:\s*(\d+)/.exec(report);
  if (exit) return `rank ${exit[1]} exited with status ${exit[2]}`;
  const abort = /MPI_ABORT was invoked on rank (\d+)[\s\S]*?errorcode (\d+)/.exec(report);
  if (abort) return `rank ${abort[1]} called MPI_Abort (error code ${abort[2]})`;
  const improper = /process rank (\d+) with PID \d+ on\s+node \S+ exiting improperly/.exec(report);
  if (improper) return `rank ${improper[1]} exited without finalizing MPI while the others still needed it`;
  return undefined;
}

export async function launch(argv: string[]): Promise<number> {
  const options = parseLaunch(argv);
  if (options === 'help') {
    console.log(LAUNCH_USAGE);
    return 0;
  }
  const plan = launchPlan(options);
  const child = spawn(plan.command, plan.args, { env: plan.env, stdio: ['inherit', 'inherit', 'pipe'] });
  // Open MPI writes its reports to stderr: passed through as it comes, and kept for the summary.
  let report = '';
  child.stderr.on('data', (chunk: Buffer) => {
    process.stderr.write(chunk);
    report += chunk.toString('utf8');
    if (report.length > 1 << 20) report = report.slice(-(1 << 19));
  });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, s) => resolve({ code: c, signal: s }));
    },
  );
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  if (code === 0) return 0;
  const why = failedRank(report);
  const status = signal ? `mpirun was stopped by ${signal}` : `mpirun exited with status ${code}`;
  process.stderr.write(
    `lmkernels launch: the job failed: ${why ? `${why}; the other ranks were stopped` : status} ` +
      `(${options.procs} ranks of ${options.script})\n`,
  );
  return code !== null && code !== 0 ? code : 1;
}
