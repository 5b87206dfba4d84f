// Runs an example script (examples/**/*.mts) the way a user does: TypeScript
// run by tsx, in a child process from the repository root, importing the
// built package by name. LMK_DEVICE=cpu keeps the run deterministic.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));

export interface ExampleRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runExample(script: string, args: string[], { timeout = 50_000 } = {}): ExampleRun {
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout,
    env: { ...process.env, LMK_DEVICE: 'cpu' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
