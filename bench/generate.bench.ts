// Generation speed of RWKV-4 with the 169M configuration (d 768, 12 layers,
// vocab 50 277; random weights) on the CPU, float32 and bfloat16, through
// lmk.generate (greedy): one token per recurrent step(). Decoding one token
// reads every weight matrix once, so the bound is
//     tokens/s ≤ copy bandwidth / weight bytes per token
// (the embedding contributes one row). Reported: tokens/s and that fraction,
// with the copy bandwidth measured again just before and after each timing
// (the larger of the two, and of the run's start): on a shared machine the
// bandwidth at the start of the run may not be the bandwidth now.
// Validated first: step()'s logits equal forward()'s at every position of a
// short sequence (the step path runs the GEMV kernel, forward the GEMM).
// transformers' generate for the same model: bench/transformers-generate.py.
import * as lmk from 'lmkernels';
import { measureCopyBandwidth, timeMs, type BenchContext, type BenchRow } from './harness';

const BYTES = { float32: 4, bfloat16: 2 } as const;

async function validate(model: lmk.nn.RWKV4Model, dtype: keyof typeof BYTES): Promise<void> {
  const ids = [11, 4000, 27, model.vocabSize - 1, 9];
  const full = await model.forward(lmk.tensor(Int32Array.from(ids), { shape: [1, ids.length] })).data();
  const V = model.vocabSize;
  let state: lmk.RWKV4State | undefined;
  for (let t = 0; t < ids.length; t++) {
    const r = model.step(lmk.tensor(Int32Array.of(ids[t]!)), state);
    if (state) lmk.nn.disposeRWKV4State(state);
    state = r.state;
    const got = await r.logits.data();
    let diff = 0,
      scale = 0;
    for (let v = 0; v < V; v++) {
      diff = Math.max(diff, Math.abs(got[v]! - full[t * V + v]!));
      scale = Math.max(scale, Math.abs(full[t * V + v]!));
    }
    // bf16 rounds every intermediate activation on store, at different points in the two paths.
    if (diff > (dtype === 'float32' ? 1e-4 : 3e-2) * scale) {
      throw new Error(`generate bench (${dtype}): step logits at position ${t} differ from forward by ${diff}`);
    }
    r.logits.dispose();
  }
  if (state) lmk.nn.disposeRWKV4State(state);
}

export async function run(ctx: BenchContext): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const config = ctx.quick
    ? { vocabSize: 5000, dModel: 256, nLayers: 4 }
    : { vocabSize: 50277, dModel: 768, nLayers: 12 };
  const newTokens = ctx.quick ? 8 : 32;
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const model = new lmk.nn.RWKV4Model({ ...config, dtype, seed: 1, device: 'cpu' });
    await validate(model, dtype);
    let weightBytes = 0;
    for (const [name, t] of model.namedParameters()) {
      const bytes = t.dtype === 'float32' ? 4 : BYTES[dtype];
      weightBytes += name === 'emb.weight' ? config.dModel * bytes : t.numel * bytes;
    }
    let produced = 0;
    const bandwidthBefore = await measureCopyBandwidth();
    const ms = await timeMs(
      async () => {
        produced = 0;
        for await (const id of lmk.generate(model, {
          inputIds: [1],
          maxNewTokens: newTokens,
          temperature: 0,
          stopTokenIds: [],
        })) {
          if (id < 0) throw new Error('generate bench: bad id');
          produced++;
        }
      },
      { warmup: 1, runs: ctx.quick ? 3 : 5 },
    );
    if (produced !== newTokens) throw new Error(`generate bench: ${produced} tokens, expected ${newTokens}`);
    const tokensPerSecond = newTokens / (ms / 1e3);
    const bandwidth = Math.max(ctx.copyBandwidth, bandwidthBefore, await measureCopyBandwidth());
    rows.push({
      bench: 'generate',
      case: `rwkv4 ${ctx.quick ? 'quick' : '169M'} ${dtype} cpu greedy, ${newTokens} tokens`,
      ms,
      metrics: {
        'tokens/s': tokensPerSecond.toFixed(1),
        'weight MB/token': (weightBytes / 1e6).toFixed(0),
        'copy GB/s': (bandwidth / 1e9).toFixed(1),
        'of bandwidth bound': ((tokensPerSecond * weightBytes) / bandwidth).toFixed(2),
      },
    });
    model.dispose();
  }
  return rows;
}
