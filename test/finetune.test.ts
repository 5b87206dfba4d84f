// `lmkernels finetune` end to end on a tiny byte-level RWKV-4 (d = 16, one layer) made here:
// each method runs and writes a loadable model; a run killed in the middle of writing a checkpoint
// leaves no broken checkpoint, and resuming it ends with exactly the weights of an uninterrupted
// run; a malformed JSONL line and a NaN loss stop the run with the line or the batch named.
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { runCli, saveByteLevelRwkv } from './cli-helpers';

const repo = join(__dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'lmk-finetune-'));
const modelDir = join(work, 'model');
const pairs = join(work, 'pairs.jsonl');
const texts = join(work, 'texts.jsonl');

const run = (args: string[], env: Record<string, string> = {}) =>
  runCli(['finetune', ...args], { LMK_NUM_THREADS: '1', ...env });

const common = (out: string, data: string, method: string) => [
  '--model',
  modelDir,
  '--data',
  data,
  '--method',
  method,
  '--out',
  join(work, out),
  '--batch',
  '4',
  '--max-length',
  '64',
  '--lr',
  '3e-3',
];

beforeAll(async () => {
  await saveByteLevelRwkv(modelDir, { dModel: 16, nLayers: 1, seed: 3 });
  const shipped = readFileSync(join(repo, 'examples', 'data', 'antonym-pairs.jsonl'), 'utf8').split('\n');
  writeFileSync(pairs, shipped.slice(0, 40).join('\n') + '\n');
  const sentences = Array.from({ length: 30 }, (_, i) =>
    i % 3 === 0
      ? JSON.stringify({ text: `Line ${i}: the quick brown fox jumps over the lazy dog.` })
      : i % 3 === 1
        ? JSON.stringify({ prompt: `Count to ${i % 7}:`, completion: ` ${'1 2 3 4 5 6'.slice(0, 2 * (i % 7))}` })
        : JSON.stringify({ prompt: 'Say hi.', chosen: ' hi', rejected: ' no' }),
  );
  writeFileSync(texts, sentences.join('\n') + '\n');
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('lmkernels finetune', () => {
  it.each(['sft', 'goldfish', 'orpo'])(
    '--method %s trains, evaluates and writes a Hugging Face directory, loss.svg and metrics.json',
    async (method) => {
      const data = method === 'orpo' ? pairs : texts;
      const r = await run([...common(method, data, method), '--steps', '12']);
      expect(r.stderr).not.toMatch(/Error|error/);
      expect(r.code).toBe(0);
      const out = join(work, method);
      const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
      expect(metrics.steps).toBe(12);
      expect(metrics.evalRows).toBeGreaterThan(0);
      expect(metrics.losses).toHaveLength(12);
      // The training loss falls over 12 steps (from about ln 256 = 5.5 for the random model).
      const first = metrics.losses[0][1],
        last = metrics.losses[11][1];
      expect(last).toBeLessThan(first);
      const keys = method === 'orpo' ? ['rewardsAccuracy', 'rewardsMargin', 'nllLoss', 'orLoss'] : ['crossEntropy'];
      for (const k of ['loss', ...keys]) expect(Number.isFinite(metrics.evaluation[k])).toBe(true);
      expect(readFileSync(join(out, 'loss.svg'), 'utf8')).toMatch(/^<svg[^]*<polyline[^]*<\/svg>\n$/);
      expect(existsSync(join(out, 'tokenizer.json'))).toBe(true);
      const model = await lmk.hub.loadModel(out, { device: 'cpu' });
      expect(model.config.architectures).toEqual(['RwkvForCausalLM']);
      model.dispose();
    },
  );

  it('survives a kill in the middle of a checkpoint and resumes to the same weights as an uninterrupted run', async () => {
    const args = (out: string) => [...common(out, pairs, 'orpo'), '--steps', '6', '--save-every', '2'];
    const whole = await run(args('whole'));
    expect(whole.code).toBe(0);

    const killed = await run(args('killed'), { LMK_FINETUNE_CRASH_IN_SAVE: '4' });
    expect(killed.signal).toBe('SIGKILL');
    const checkpoints = join(work, 'killed', 'checkpoints');
    const left = readdirSync(checkpoints).sort();
    // step 2 is complete; step 4 exists only as a hidden temporary directory, its weights written
    // and its optimizer state and state.json not: never as a broken step-00000004.
    expect(left).toEqual(['.tmp-step-00000004-' + left[0]!.split('-').pop(), 'step-00000002']);
    expect(readdirSync(join(checkpoints, left[0]!))).toEqual(['weights.safetensors']);
    expect(readdirSync(join(checkpoints, 'step-00000002')).sort()).toEqual([
      'optimizer.safetensors',
      'state.json',
      'weights.safetensors',
    ]);

    const resumed = await run(['--out', join(work, 'killed'), '--resume']);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(/resuming .* at step 2\/6/);
    expect(readdirSync(checkpoints).sort()).toEqual(['step-00000004', 'step-00000006']);
    const a = readFileSync(join(work, 'whole', 'model.safetensors'));
    const b = readFileSync(join(work, 'killed', 'model.safetensors'));
    expect(b.equals(a)).toBe(true);
    const ma = JSON.parse(readFileSync(join(work, 'whole', 'metrics.json'), 'utf8'));
    const mb = JSON.parse(readFileSync(join(work, 'killed', 'metrics.json'), 'utf8'));
    expect(mb.losses).toEqual(ma.losses);
    expect(mb.evaluations).toEqual(ma.evaluations);
  });

  it('--lora writes a PEFT adapter over the base model, resumes exactly, and generate loads it', async () => {
    const args = (out: string) => [...common(out, texts, 'sft'), '--steps', '4', '--save-every', '2', '--lora', '2'];
    expect((await run(args('lora-whole'))).code).toBe(0);
    const out = join(work, 'lora-whole');
    expect(readdirSync(out).sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'checkpoints',
      'loss.svg',
      'metrics.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: 2, base_model_name_or_path: modelDir });
    expect(config.target_modules).toEqual(['key', 'value', 'receptance', 'output']);
    // Only the adapter is trained: the checkpoint holds lora_A / lora_B tensors alone.
    const saved = await lmk.loadSafetensors(join(out, 'checkpoints', 'step-00000004', 'weights.safetensors'));
    expect(Object.keys(saved).every((k) => /\.lora_[AB]\.weight$/.test(k))).toBe(true);

    expect((await run(args('lora-killed'), { LMK_FINETUNE_CRASH_IN_SAVE: '4' })).signal).toBe('SIGKILL');
    expect((await run(['--out', join(work, 'lora-killed'), '--resume'])).code).toBe(0);
    const a = readFileSync(join(out, 'adapter_model.safetensors'));
    expect(readFileSync(join(work, 'lora-killed', 'adapter_model.safetensors')).equals(a)).toBe(true);

    const generated = await runCli([
      'generate',
      '--model',
      out,
      '--prompt',
      'Say',
      '--max-new-tokens',
      '4',
      '--temperature',
      '0',
    ]);
    expect(generated.code).toBe(0);
    expect(generated.stdout.startsWith('Say')).toBe(true);
  });

  it('fine-tunes a Llama with a BPE tokenizer on conversational pairs through the chat template (--lora)', async () => {
    const dir = join(work, 'llama');
    const tokenizerDir = join(repo, 'test', 'fixtures', 'tokenizers', 'bpe-byte-level');
    const tok = await lmk.hub.loadTokenizer(tokenizerDir);
    const model = new lmk.nn.LlamaModel({
      vocabSize: tok.vocabSize,
      dModel: 16,
      nLayers: 1,
      nHeads: 2,
      nKvHeads: 1,
      intermediateSize: 32,
      seed: 5,
    });
    await lmk.hub.saveModel(model, dir);
    model.dispose();
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tokenizerDir, f), join(dir, f));
    const chats = join(work, 'chats.jsonl');
    const row = (q: string, good: string, bad: string) =>
      JSON.stringify({
        prompt: [{ role: 'user', content: q }],
        chosen: [{ role: 'assistant', content: good }],
        rejected: [{ role: 'assistant', content: bad }],
      });
    writeFileSync(
      chats,
      Array.from({ length: 12 }, (_, i) => row(`What is ${i} + 1?`, `${i + 1}.`, `${i + 2}!`)).join('\n') + '\n',
    );
    const r = await run([
      '--model',
      dir,
      '--data',
      chats,
      '--method',
      'orpo',
      '--out',
      join(work, 'llama-orpo'),
      '--lora',
      '4',
      '--steps',
      '3',
      '--batch',
      '2',
      '--max-length',
      '128',
    ]);
    expect(r.code).toBe(0);
    const config = JSON.parse(readFileSync(join(work, 'llama-orpo', 'adapter_config.json'), 'utf8'));
    expect(config.target_modules).toEqual(['q_proj', 'v_proj']);
    const metrics = JSON.parse(readFileSync(join(work, 'llama-orpo', 'metrics.json'), 'utf8'));
    expect(metrics.trainRows + metrics.evalRows).toBe(12);
    expect(Number.isFinite(metrics.evaluation.rewardsAccuracy)).toBe(true);
  });

  it('names the file and line of a malformed JSONL row', async () => {
    const bad = join(work, 'bad.jsonl');
    writeFileSync(bad, '{"text": "fine"}\n{"text": "fine"}\n{"text": "broken"\n');
    const r = await run([...common('bad', bad, 'sft'), '--steps', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad\.jsonl:3: malformed JSON/);
  });

  it('stops on a NaN loss naming the step and the rows of the batch', async () => {
    const r = await run([...common('nan', pairs, 'orpo'), '--steps', '5', '--lr', '1e30']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /the loss is NaN at step \d+ \(micro-batch 1 of 1\); the batch holds .*pairs\.jsonl lines \d+, \d+, \d+, \d+/,
    );
  });

  it('refuses to overwrite a run, and reports bad options by name', async () => {
    const again = await run([...common('sft', texts, 'sft'), '--steps', '2']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already holds a run .* pass --resume/);
    // --resume reads the same rows again only if the data file is unchanged.
    const data = join(work, 'changing.jsonl');
    writeFileSync(data, readFileSync(texts));
    expect((await run([...common('changing', data, 'sft'), '--steps', '2'])).code).toBe(0);
    writeFileSync(data, readFileSync(texts, 'utf8') + '{"text": "one more row"}\n');
    const changed = await run(['--out', join(work, 'changing'), '--resume']);
    expect(changed.code).toBe(1);
    expect(changed.stderr).toMatch(/changing\.jsonl changed since the run began/);
    const noModel = await run(['--data', texts, '--method', 'sft', '--out', join(work, 'x')]);
    expect(noModel.code).toBe(2);
    expect(noModel.stderr).toMatch(/--model is required/);
    const badLr = await run([...common('y', texts, 'sft'), '--lr', 'fast']);
    expect(badLr.stderr).toMatch(/--lr must be a number, got 'fast'/);
    const badMethod = await run([...common('z', texts, 'dpo')]);
    expect(badMethod.stderr).toMatch(/--method must be sft \| orpo \| goldfish, got "dpo"/);
    const textForOrpo = await run([...common('w', texts, 'orpo'), '--steps', '1']);
    expect(textForOrpo.stderr).toMatch(/texts\.jsonl:1: .*row must have 'chosen' and 'rejected'/);
  });
});
