// Runs a script on several ranks with Open MPI's mpirun, as the dist tests
// need it: one thread per rank (LMK_NUM_THREADS=1, for this 2-core machine),
// --oversubscribe, as root too, with a time limit so that a hang fails the
// test instead of the suite. Scripts run under tsx and import the built
// package by name.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

export const root = resolve(__dirname, '..', '..');

/** mpirun's path when it is on PATH, else null. */
export const mpirun: string | null =
  (process.env.PATH ?? '')
    .split(delimiter)
    .map((dir) => join(dir, 'mpirun'))
    .find((file) => existsSync(file)) ?? null;

/** CI sets LMK_EXPECT_MPI=1: there, a missing mpirun fails instead of skipping. */
export const expectMpi = process.env.LMK_EXPECT_MPI === '1';

export interface RanksRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** The environment a rank needs: one thread, and mpirun allowed as root. */
export function rankEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    LMK_NUM_THREADS: '1',
    OMPI_ALLOW_RUN_AS_ROOT: '1',
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
    ...extra,
  };
}

/** Runs `node --import tsx script args` on `ranks` ranks (mpirun -n ranks --oversubscribe). */
export function runRanks(
  script: string,
  { ranks = 2, args = [] as string[], timeout = 90_000, env = {} as Record<string, string> } = {},
): RanksRun {
  if (!mpirun) throw new Error('mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)');
  const start = Date.now();
  const r = spawnSync(
    mpirun,
    ['-n', String(ranks), '--oversubscribe', process.execPath, '--import', 'tsx', script, ...args],
    { cwd: root, encoding: 'utf8', timeout, killSignal: 'SIGTERM', env: rankEnvironment(env) },
  );
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - start };
}
