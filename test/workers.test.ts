// The addon in worker_threads: several workers at once, each with its own
// tensors, in parallel with the main thread; workers that exit, or are
// terminated with work still queued, leave the process and its memory intact.
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';

const entry = join(resolve(__dirname, '..'), 'dist/cjs/index.js');

// A worker's job: a small training step and reads, checked against float64
// sums computed in the worker; reports its own memory().tensors.
const workerCode = `
const { parentPort, workerData } = require('node:worker_threads');
const lmk = require(${JSON.stringify(entry)});
(async () => {
  const { id, n } = workerData;
  const before = lmk.memory().tensors;
  const values = Array.from({ length: n * n }, (_, i) => ((i * 7 + id) % 11) / 11 - 0.5);
  const a = lmk.tensor(values, { shape: [n, n], dtype: 'float64' });
  a.requiresGrad = true;
  const y = lmk.tidy(() => lmk.ops.sum(lmk.ops.square(lmk.ops.matmul(a, a))));
  y.backward();
  // d/dA sum((A A)^2) = 2 (A A) A^T + 2 A^T (A A)
  const at = (r, c) => values[r * n + c];
  const aa = Array.from({ length: n * n }, (_, k) => {
    let s = 0;
    for (let j = 0; j < n; j++) s += at(Math.floor(k / n), j) * at(j, k % n);
    return s;
  });
  let expectedY = 0;
  for (const v of aa) expectedY += v * v;
  const grad = Array.from(await a.grad.data());
  let worst = 0;
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      let g = 0;
      for (let j = 0; j < n; j++) g += 2 * aa[r * n + j] * at(c, j) + 2 * at(j, r) * aa[j * n + c];
      worst = Math.max(worst, Math.abs(g - grad[r * n + c]));
    }
  }
  const gotY = await y.item();
  const live = lmk.memory().tensors - before;
  a.grad.dispose();
  a.dispose();
  y.dispose();
  parentPort.postMessage({ id, yError: Math.abs(gotY - expectedY), gradError: worst, live, after: lmk.memory().tensors - before });
})().catch((e) => { parentPort.postMessage({ error: String(e && e.stack || e) }); });
`;

// Runs a worker to its end; resolves with the message it posted.
function runWorker(data: unknown): Promise<Record<string, number | string>> {
  return new Promise((resolveRun, reject) => {
    const worker = new Worker(workerCode, { eval: true, workerData: data });
    let result: Record<string, number | string> = { error: 'no message' };
    worker.once('message', (m) => {
      result = m;
    });
    worker.once('error', reject);
    worker.once('exit', () => resolveRun(result));
  });
}

describe('worker_threads', () => {
  it('several workers at once, each with its own tensors, in parallel with the main thread', async () => {
    await lmk.synchronize('cpu');
    const mainBefore = lmk.memory().tensors;
    const jobs = [1, 2, 3].map((id) => runWorker({ id, n: 24 }));
    // The main thread keeps working meanwhile; its count sees only its own tensors.
    const x = lmk.arange(1000, { dtype: 'float64' });
    const s = lmk.tidy(() => lmk.ops.sum(lmk.ops.mul(x, x)));
    expect(lmk.memory().tensors).toBe(mainBefore + 2);
    const results = await Promise.all(jobs);
    expect(await s.item()).toBe((999 * 1000 * 1999) / 6);
    for (const r of results) {
      expect(r.error).toBeUndefined();
      expect(r.yError).toBeLessThan(1e-6);
      expect(r.gradError).toBeLessThan(1e-9);
      expect(r.live).toBe(3); // a, its grad and y: this worker's tensors only
      expect(r.after).toBe(0);
    }
    x.dispose();
    s.dispose();
    expect(lmk.memory().tensors).toBe(mainBefore);
  });

  it('a worker terminated with reads pending, or exiting with undisposed tensors, frees its memory', async () => {
    await lmk.synchronize('cpu');
    const baseline = lmk.memory().bytesInUse.cpu;
    const busy = `
      const { parentPort, workerData } = require('node:worker_threads');
      const lmk = require(${JSON.stringify(entry)});
      const x = lmk.randn([256, 256], { seed: 1 });
      for (let i = 0; i < 8; i++) lmk.ops.matmul(x, x).data();
      parentPort.postMessage({ queued: 8 });
      if (workerData.exit) process.exit(0);
    `;
    const terminated = new Worker(busy, { eval: true, workerData: { exit: false } });
    await new Promise((r) => terminated.once('message', r));
    await terminated.terminate();
    const exited = new Worker(busy, { eval: true, workerData: { exit: true } });
    await new Promise((r) => exited.once('exit', r));
    await lmk.synchronize('cpu'); // the queued work of both has run
    await new Promise((r) => setTimeout(r, 50));
    expect(lmk.memory().bytesInUse.cpu).toBe(baseline);
    expect(Array.from(await lmk.arange(3).data())).toEqual([0, 1, 2]);
  });

  it('the process survives a worker that loaded the addon alone and was terminated mid-work', () => {
    // The main thread of this child never loads lmkernels: when the worker goes,
    // Node unloads the addon unless it is pinned while its threads still run.
    const script = `
      const { Worker } = require('node:worker_threads');
      const w = new Worker(\`
        const { parentPort } = require('node:worker_threads');
        const lmk = require(${JSON.stringify(entry)});
        const x = lmk.randn([384, 384], { seed: 2 });
        for (let i = 0; i < 16; i++) lmk.ops.matmul(x, x).data();
        parentPort.postMessage('queued');
      \`, { eval: true });
      w.once('message', () => w.terminate());
      w.once('exit', () => setTimeout(() => console.log('main alive'), 500));
    `;
    expect(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }).trim()).toBe('main alive');
  });
});
