// Helpers of the command-line tests: run the built CLI (dist/cjs/cli.js) in a child process on
// the CPU, and write a tiny byte-level RWKV-4 model directory for it to read.
import { execFile } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import * as lmk from 'lmkernels';

const repo = join(__dirname, '..');
export const cliPath = join(repo, 'dist', 'cjs', 'cli.js');

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

/** A randomly initialised byte-level RWKV-4 as a Hugging Face directory with the 256-byte tokenizer. */
export async function saveByteLevelRwkv(dir: string, opts: { dModel: number; nLayers: number; seed: number }) {
  const model = new lmk.nn.RWKV4Model({ vocabSize: 256, ...opts });
  await lmk.hub.saveModel(model, dir);
  model.dispose();
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    copyFileSync(join(repo, 'test', 'fixtures', 'tokenizers', 'bytes', f), join(dir, f));
  }
}
