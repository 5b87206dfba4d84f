// Runs the built command line (dist/cjs/cli.js) in a child process, on the CPU.
import { execFile } from 'node:child_process';
import { join } from 'node:path';

export const cliPath = join(__dirname, '..', 'dist', 'cjs', 'cli.js');

export interface CliRun {
  /** Exit status; null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      { env: { ...process.env, LMK_DEVICE: 'cpu', ...env } },
      (error, stdout, stderr) => {
        const e = error as (Error & { code?: number; signal?: NodeJS.Signals }) | null;
        resolve({ code: e ? (e.code ?? null) : 0, signal: e?.signal ?? null, stdout, stderr });
      },
    );
  });
}
