// Fine-tuning checkpoints under --out/checkpoints/: step-<n>/ holds the trainable weights
// (weights.safetensors), the optimizer state (optimizer.safetensors) and state.json (the run's
// options, the step, the data position, the data-order generator, the loss history).
//
// Atomic: a checkpoint is written into a hidden temporary directory, every file flushed to disk
// (fsync), then the directory is renamed to step-<n> (rename is atomic on POSIX file systems)
// and the parent directory flushed. A crash at any moment leaves either no step-<n> or a
// complete one; temporary directories left by a crash are removed by the next run. The two
// newest complete checkpoints are kept.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as lmk from '../index';
import type { Tensor } from '../tensor';

const NAME = /^step-(\d+)$/;
const TEMPORARY = /^\.tmp-step-/;
const KEEP = 2;

export interface CheckpointFiles {
  weights: Record<string, Tensor>;
  optimizer: { tensors: Record<string, Tensor>; metadata: Record<string, string> };
  state: Record<string, unknown>;
}

async function syncFile(file: string): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Test hook: LMK_FINETUNE_CRASH_IN_SAVE=<step> kills the process (SIGKILL, as a power cut would)
 * in the middle of writing the checkpoint of that step, after its weights and before the rest.
 * test/finetune.test.ts uses it to show that a crash mid-write leaves no broken checkpoint.
 */
function crashHook(step: number): void {
  if (process.env.LMK_FINETUNE_CRASH_IN_SAVE === String(step)) process.kill(process.pid, 'SIGKILL');
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

export async function saveCheckpoint(dir: string, step: number, files: CheckpointFiles): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const final = path.join(dir, checkpointName(step));
  const temporary = path.join(dir, `.tmp-${checkpointName(step)}-${process.pid}`);
  await fs.rm(temporary, { recursive: true, force: true });
  await fs.mkdir(temporary);
  const weights = path.join(temporary, 'weights.safetensors');
  await lmk.saveSafetensors(weights, files.weights);
  await syncFile(weights);
  crashHook(step);
  const optimizer = path.join(temporary, 'optimizer.safetensors');
  await lmk.saveSafetensors(optimizer, files.optimizer.tensors, files.optimizer.metadata);
  await syncFile(optimizer);
  const state = path.join(temporary, 'state.json');
  await fs.writeFile(state, JSON.stringify(files.state, null, 1) + '\n');
  await syncFile(state);
  await syncFile(temporary);
  await fs.rm(final, { recursive: true, force: true });
  await fs.rename(temporary, final);
  await syncFile(dir);
  // Older checkpoints go once the new one is in place.
  const steps = await completeCheckpoints(dir);
  for (const old of steps.slice(0, Math.max(0, steps.length - KEEP))) {
    await fs.rm(path.join(dir, checkpointName(old)), { recursive: true, force: true });
  }
  return final;
}

/** Steps of the complete checkpoints in dir, ascending. */
export async function completeCheckpoints(dir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return [];
  }
  return names
    .map((n) => NAME.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** Removes what a crash left half-written. */
export async function removeTemporaries(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  for (const n of names.filter((name) => TEMPORARY.test(name))) {
    await fs.rm(path.join(dir, n), { recursive: true, force: true });
  }
}

export async function readCheckpointState(dir: string, step: number): Promise<Record<string, unknown>> {
  const file = path.join(dir, checkpointName(step), 'state.json');
  return JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
}

export async function loadCheckpointTensors(
  dir: string,
  step: number,
  device: lmk.Device,
): Promise<Pick<CheckpointFiles, 'weights' | 'optimizer'>> {
  const at = path.join(dir, checkpointName(step));
  const weights = await lmk.loadSafetensors(path.join(at, 'weights.safetensors'), { device });
  const optimizerFile = path.join(at, 'optimizer.safetensors');
  const tensors = await lmk.loadSafetensors(optimizerFile, { device });
  const metadata = await lmk.safetensorsMetadata(optimizerFile);
  return { weights, optimizer: { tensors, metadata } };
}
