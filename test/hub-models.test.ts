import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';
import { FIXTURES, expectedOf, idsTensor, relativeError } from './hf-fixtures';

const tmp = mkdtempSync(join(tmpdir(), 'lmk-hub-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const MODELS = ['rwkv4', 'llama-gqa-tied', 'llama-untied-sharded', 'mistral', 'qwen2'];

async function paramBytes(model: lmk.hub.CausalLM): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [name, t] of model.namedParameters()) out.set(name, Array.from(await t.data()));
  return out;
}

describe('hub.loadModel: logits equal transformers (float32, 1e-4 relative)', () => {
  for (const name of [...MODELS, 'rwkv4-bf16']) {
    it(name, async () => {
      const exp = expectedOf(name);
      const model = await lmk.hub.loadModel(join(FIXTURES, name), { device: 'cpu' });
      const logits = model.forward(idsTensor(exp.input_ids));
      expect(logits.shape).toEqual([2, 12, 64]);
      expect(relativeError(await logits.data(), exp.logits)).toBeLessThan(1e-4);
      // hiddenStates → head is forward.
      const viaHidden = model.head.forward(model.hiddenStates(idsTensor(exp.input_ids)));
      expect(Array.from(await viaHidden.data())).toEqual(Array.from(await logits.data()));
      model.dispose();
    });
  }
});

describe('hub.saveModel', () => {
  for (const name of MODELS) {
    it(`${name}: what it writes loads back bit-identically`, async () => {
      const model = await lmk.hub.loadModel(join(FIXTURES, name), { device: 'cpu' });
      const out = join(tmp, `${name}-saved`);
      await lmk.hub.saveModel(model, out, name.includes('sharded') ? { maxShardBytes: 20_000 } : {});
      const back = await lmk.hub.loadModel(out, { device: 'cpu' });
      expect(await paramBytes(back)).toEqual(await paramBytes(model));
      expect(back.config.architectures).toEqual(model.config.architectures);
      model.dispose();
      back.dispose();
    });
  }

  it('writes the same tensor bytes as transformers (names, shapes, HF row order)', async () => {
    const model = await lmk.hub.loadModel(join(FIXTURES, 'llama-gqa-tied'), { device: 'cpu' });
    const out = join(tmp, 'tied-bytes');
    await lmk.hub.saveModel(model, out);
    const mine = await lmk.loadSafetensors(join(out, 'model.safetensors'), { device: 'cpu' });
    const theirs = await lmk.loadSafetensors(join(FIXTURES, 'llama-gqa-tied', 'model.safetensors'), { device: 'cpu' });
    expect(Object.keys(mine).sort()).toEqual(Object.keys(theirs).sort());
    for (const [k, t] of Object.entries(theirs)) {
      expect(mine[k]!.shape, k).toEqual(t.shape);
      expect(Array.from(await mine[k]!.data()), k).toEqual(Array.from(await t.data()));
    }
    model.dispose();
  });

  it('shards past maxShardBytes, with the index transformers reads', async () => {
    const model = await lmk.hub.loadModel(join(FIXTURES, 'rwkv4'), { device: 'cpu' });
    const out = join(tmp, 'rwkv-shards');
    await lmk.hub.saveModel(model, out, { maxShardBytes: 16_384 });
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    const files = new Set(Object.values(index.weight_map as Record<string, string>));
    expect(files.size).toBeGreaterThan(2);
    for (const f of files) expect(f).toMatch(/^model-\d{5}-of-\d{5}\.safetensors$/);
    expect(index.weight_map['rwkv.blocks.0.pre_ln.weight']).toBeDefined();
    const back = await lmk.hub.loadModel(out, { device: 'cpu' });
    expect(await paramBytes(back)).toEqual(await paramBytes(model));
    model.dispose();
    back.dispose();
  });

  it('bfloat16: a bf16 checkpoint saved from a bf16 model is the same file content', async () => {
    const dir = join(FIXTURES, 'rwkv4-bf16');
    const model = await lmk.hub.loadModel(dir, { device: 'cpu', dtype: 'bfloat16' });
    expect(model.head.weight.dtype).toBe('bfloat16');
    const out = join(tmp, 'bf16');
    await lmk.hub.saveModel(model, out);
    const mine = await lmk.loadSafetensors(join(out, 'model.safetensors'), { device: 'cpu' });
    const theirs = await lmk.loadSafetensors(join(dir, 'model.safetensors'), { device: 'cpu' });
    for (const [k, t] of Object.entries(theirs)) {
      expect(mine[k]!.dtype).toBe('bfloat16');
      expect(Array.from(await mine[k]!.data()), k).toEqual(Array.from(await t.data()));
    }
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    model.dispose();
  });

  it('a FAM model saves its initial FAM beside the weights and reads it back', async () => {
    const fam = { blockSize: 4, memoryBlocks: 1, famLength: 2 };
    const model = await lmk.hub.loadModel(join(FIXTURES, 'qwen2'), { device: 'cpu', fam });
    const out = join(tmp, 'qwen-fam');
    await lmk.hub.saveModel(model, out);
    const back = await lmk.hub.loadModel(out, { device: 'cpu', fam });
    expect(await paramBytes(back)).toEqual(await paramBytes(model));
    const names = Object.keys(await lmk.loadSafetensors(join(out, 'model.safetensors'), { device: 'cpu' }));
    expect(names).toContain('model.layers.1.fam_init');
    model.dispose();
    back.dispose();
  });

  it('a model built from scratch saves a config that loads back', async () => {
    const model = new lmk.nn.LlamaModel({
      vocabSize: 40,
      dModel: 16,
      nLayers: 1,
      nHeads: 2,
      nKvHeads: 1,
      intermediateSize: 24,
      tieWordEmbeddings: true,
      seed: 3,
    });
    const out = join(tmp, 'scratch');
    await lmk.hub.saveModel(model, out);
    const back = await lmk.hub.loadModel(out, { device: 'cpu' });
    expect(back).toBeInstanceOf(lmk.nn.LlamaModel);
    expect(await paramBytes(back)).toEqual(await paramBytes(model));
    model.dispose();
    back.dispose();
  });
});

describe('hub.loadModel errors', () => {
  function copyFixture(name: string, to: string): string {
    const dir = join(tmp, to);
    cpSync(join(FIXTURES, name), dir, { recursive: true });
    return dir;
  }

  it('an unknown architecture: RangeError naming it and the supported ones', async () => {
    const dir = copyFixture('rwkv4', 'unknown-arch');
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    config.architectures = ['GPTNeoXForCausalLM'];
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const err = await lmk.hub.loadModel(dir, { device: 'cpu' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RangeError);
    expect(String(err)).toMatch(/GPTNeoXForCausalLM/);
    expect(String(err)).toMatch(/RwkvForCausalLM, LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM/);
  });

  async function rewriteWeights(dir: string, edit: (t: Record<string, lmk.Tensor>) => void) {
    const file = join(dir, 'model.safetensors');
    const tensors = await lmk.loadSafetensors(file, { device: 'cpu' });
    edit(tensors);
    await lmk.saveSafetensors(file, tensors, { format: 'pt' });
  }

  it('a missing tensor: RangeError naming it as in the file', async () => {
    const dir = copyFixture('mistral', 'missing');
    await rewriteWeights(dir, (t) => delete t['model.layers.1.mlp.up_proj.weight']);
    await expect(lmk.hub.loadModel(dir, { device: 'cpu' })).rejects.toThrow(
      /hub\.loadModel: tensor model\.layers\.1\.mlp\.up_proj\.weight is missing/,
    );
  });

  it('a mis-shaped tensor: RangeError naming it and both shapes', async () => {
    const dir = copyFixture('rwkv4', 'misshaped');
    await rewriteWeights(dir, (t) => {
      t['rwkv.blocks.1.feed_forward.key.weight'] = lmk.zeros([95, 32]);
    });
    const err = await lmk.hub.loadModel(dir, { device: 'cpu' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RangeError);
    expect(String(err)).toMatch(/rwkv\.blocks\.1\.feed_forward\.key\.weight .*\[95,32\], expected \[96,32\]/);
  });

  it('a directory without weights or config', async () => {
    const dir = join(tmp, 'empty');
    await expect(lmk.hub.loadModel(dir, { device: 'cpu' })).rejects.toThrow(/has no config\.json/);
    const only = copyFixture('rwkv4', 'noweights');
    rmSync(join(only, 'model.safetensors'));
    await expect(lmk.hub.loadModel(only, { device: 'cpu' })).rejects.toThrow(
      /neither model\.safetensors nor model\.safetensors\.index\.json/,
    );
  });

  it('bad options are TypeErrors', async () => {
    await expect(lmk.hub.loadModel(join(FIXTURES, 'rwkv4'), { dtpye: 'float32' } as never)).rejects.toThrow(TypeError);
    await expect(lmk.hub.loadModel(join(FIXTURES, 'rwkv4'), { dtype: 'int32' } as never)).rejects.toThrow(TypeError);
  });
});

describe("PyTorch's pytorch_model.bin (torch.save archive, read as weights_only)", () => {
  it('loads to the same logits as transformers (a non-contiguous tensor included)', async () => {
    const exp = expectedOf('rwkv4-bin');
    const model = await lmk.hub.loadModel(join(FIXTURES, 'rwkv4-bin'), { device: 'cpu' });
    const logits = model.forward(idsTensor(exp.input_ids));
    expect(relativeError(await logits.data(), exp.logits)).toBeLessThan(1e-4);
    const fromSafetensors = await lmk.hub.loadModel(join(FIXTURES, 'rwkv4'), { device: 'cpu' });
    expect(await paramBytes(model)).toEqual(await paramBytes(fromSafetensors));
    model.dispose();
    fromSafetensors.dispose();
  });

  it('refuses a pickle that calls anything but the allowed globals', async () => {
    // A zip with data.pkl = pickle of os.system('true') (protocol 2), stored, no compression.
    const pkl = Buffer.concat([
      Buffer.from([0x80, 0x02]),
      Buffer.from('cos\nsystem\n', 'latin1'),
      Buffer.from([0x58, 4, 0, 0, 0]),
      Buffer.from('true'),
      Buffer.from([0x85, 0x52, 0x2e]),
    ]);
    const name = Buffer.from('archive/data.pkl');
    const crc = 0; // not checked by the reader
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(pkl.length, 18);
    local.writeUInt32LE(pkl.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt32LE(pkl.length, 20);
    central.writeUInt32LE(pkl.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(0, 42);
    const cdOffset = local.length + name.length + pkl.length;
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(0x06054b50, 0);
    eocd.writeUInt16LE(1, 8);
    eocd.writeUInt16LE(1, 10);
    eocd.writeUInt32LE(central.length + name.length, 12);
    eocd.writeUInt32LE(cdOffset, 16);
    const dir = join(tmp, 'evil-bin');
    cpSync(join(FIXTURES, 'rwkv4-bin', 'config.json'), join(dir, 'config.json'));
    writeFileSync(join(dir, 'pytorch_model.bin'), Buffer.concat([local, name, pkl, central, name, eocd]));
    await expect(lmk.hub.loadModel(dir, { device: 'cpu' })).rejects.toThrow(/global os\.system is not allowed/);
  });
});
