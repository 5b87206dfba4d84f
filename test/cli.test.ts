// `lmkernels generate` (and the command dispatch): the greedy continuation it prints equals one
// computed here another way, by re-running the whole sequence through model.forward for every new
// token and taking the arg-max (generate uses the recurrent step with state).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { runCli, saveByteLevelRwkv } from './cli-helpers';

const work = mkdtempSync(join(tmpdir(), 'lmk-cli-'));
const modelDir = join(work, 'model');

const run = runCli;

beforeAll(() => saveByteLevelRwkv(modelDir, { dModel: 32, nLayers: 2, seed: 11 }));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Greedy decoding by full forward passes over the growing sequence, stopping at EOS (byte 0 here). */
async function greedyByForward(prompt: string, maxNewTokens: number): Promise<string> {
  const model = await lmk.hub.loadModel(modelDir, { device: 'cpu' });
  const ids = Array.from(Buffer.from(prompt, 'utf8'));
  const generated: number[] = [];
  for (let n = 0; n < maxNewTokens; n++) {
    const logits = lmk.noGrad(() => model.forward(lmk.tensor(Int32Array.from(ids), { shape: [1, ids.length] })));
    const row = (await logits.data()).subarray((ids.length - 1) * 256, ids.length * 256);
    logits.dispose();
    let best = 0;
    for (let v = 1; v < 256; v++) if (row[v]! > row[best]!) best = v;
    ids.push(best);
    generated.push(best);
    if (best === 0) break;
  }
  model.dispose();
  return new TextDecoder().decode(Uint8Array.from(generated));
}

describe('lmkernels generate', () => {
  it('prints the prompt and the greedy continuation computed by full forward passes', async () => {
    const prompt = 'The quick brown fox ';
    const r = await run([
      'generate',
      '--model',
      modelDir,
      '--prompt',
      prompt,
      '--max-new-tokens',
      '16',
      '--temperature',
      '0',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(prompt + (await greedyByForward(prompt, 16)) + '\n');
    expect(r.stderr).toMatch(/generate: \d+ tokens in .* tokens\/s/);
  });

  it('samples reproducibly with a seed', async () => {
    const args = ['generate', '--model', modelDir, '--prompt', 'abc', '--max-new-tokens', '12', '--top-p', '0.9'];
    const a = await run([...args, '--seed', '5']);
    const b = await run([...args, '--seed', '5']);
    expect(a.code).toBe(0);
    expect(b.stdout).toBe(a.stdout);
  });

  it('reports a missing model directory and bad options', async () => {
    const missing = await run(['generate', '--model', join(work, 'nowhere'), '--prompt', 'x']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/hub\.loadModel: .*nowhere/);
    const noPrompt = await run(['generate', '--model', modelDir]);
    expect(noPrompt.code).toBe(2);
    expect(noPrompt.stderr).toMatch(/--prompt is required/);
    const badFlag = await run(['generate', '--model', modelDir, '--prompt', 'x', '--temprature', '0']);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toMatch(/Unknown option '--temprature'/);
  });
});

describe('lmkernels', () => {
  it('lists its commands, and rejects an unknown one', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    for (const c of ['doctor', 'generate', 'finetune']) expect(help.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    const unknown = await run(['train']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'train'/);
  });

  it('still runs doctor', async () => {
    const r = await run(['doctor']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/lmkernels doctor[^]*cpu threads/);
  });
});
