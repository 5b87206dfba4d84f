// The architectures hub.loadModel knows: how to build our model from a
// Hugging Face config.json, and one table per architecture mapping our
// parameter names to the file's (docs/architecture.md: "a loader maps Hugging
// Face names to ours in one table per architecture").
import type { DType } from '../dtype';
import type { DeviceSpec } from '../device';
import { RWKV4Model } from '../nn/rwkv4';
import { LlamaModel, type LlamaFamOptions, type LlamaRopeScaling } from '../nn/llama';

export type CausalLM = RWKV4Model | LlamaModel;

/**
 * How a tensor is laid out in the file compared with our parameter:
 * 'same'; 'mix' = RWKV's time_mix_* stored as [1,1,C]; 'rotaryQ'/'rotaryK' =
 * q_proj/k_proj rows in transformers' rotate_half order, permuted per head to
 * our interleaved RoPE pairs (lib/nn/llama.ts).
 */
export type Layout = 'same' | 'mix' | 'rotaryQ' | 'rotaryK';

/** [our name, the file's name, layout]; `{i}` is a layer index. */
type NameTable = readonly (readonly [string, string, Layout?])[];

const RWKV_NAMES: NameTable = [
  ['emb.weight', 'rwkv.embeddings.weight'],
  ['ln0.weight', 'rwkv.blocks.0.pre_ln.weight'],
  ['ln0.bias', 'rwkv.blocks.0.pre_ln.bias'],
  ['blocks.{i}.ln1.weight', 'rwkv.blocks.{i}.ln1.weight'],
  ['blocks.{i}.ln1.bias', 'rwkv.blocks.{i}.ln1.bias'],
  ['blocks.{i}.ln2.weight', 'rwkv.blocks.{i}.ln2.weight'],
  ['blocks.{i}.ln2.bias', 'rwkv.blocks.{i}.ln2.bias'],
  ['blocks.{i}.att.timeDecay', 'rwkv.blocks.{i}.attention.time_decay'],
  ['blocks.{i}.att.timeFirst', 'rwkv.blocks.{i}.attention.time_first'],
  ['blocks.{i}.att.mixK', 'rwkv.blocks.{i}.attention.time_mix_key', 'mix'],
  ['blocks.{i}.att.mixV', 'rwkv.blocks.{i}.attention.time_mix_value', 'mix'],
  ['blocks.{i}.att.mixR', 'rwkv.blocks.{i}.attention.time_mix_receptance', 'mix'],
  ['blocks.{i}.att.key.weight', 'rwkv.blocks.{i}.attention.key.weight'],
  ['blocks.{i}.att.value.weight', 'rwkv.blocks.{i}.attention.value.weight'],
  ['blocks.{i}.att.receptance.weight', 'rwkv.blocks.{i}.attention.receptance.weight'],
  ['blocks.{i}.att.output.weight', 'rwkv.blocks.{i}.attention.output.weight'],
  ['blocks.{i}.ffn.mixK', 'rwkv.blocks.{i}.feed_forward.time_mix_key', 'mix'],
  ['blocks.{i}.ffn.mixR', 'rwkv.blocks.{i}.feed_forward.time_mix_receptance', 'mix'],
  ['blocks.{i}.ffn.key.weight', 'rwkv.blocks.{i}.feed_forward.key.weight'],
  ['blocks.{i}.ffn.receptance.weight', 'rwkv.blocks.{i}.feed_forward.receptance.weight'],
  ['blocks.{i}.ffn.value.weight', 'rwkv.blocks.{i}.feed_forward.value.weight'],
  ['lnOut.weight', 'rwkv.ln_out.weight'],
  ['lnOut.bias', 'rwkv.ln_out.bias'],
  ['head.weight', 'head.weight'],
];

// LlamaModel registers transformers' module names, under `model.` there.
// fam_init is ours (TransformerFAM's initial memory): saved beside the
// weights, read when present, otherwise left at its initialisation.
const LLAMA_NAMES: NameTable = [
  ['embed_tokens.weight', 'model.embed_tokens.weight'],
  ['layers.{i}.input_layernorm.weight', 'model.layers.{i}.input_layernorm.weight'],
  ['layers.{i}.post_attention_layernorm.weight', 'model.layers.{i}.post_attention_layernorm.weight'],
  ['layers.{i}.self_attn.q_proj.weight', 'model.layers.{i}.self_attn.q_proj.weight', 'rotaryQ'],
  ['layers.{i}.self_attn.q_proj.bias', 'model.layers.{i}.self_attn.q_proj.bias', 'rotaryQ'],
  ['layers.{i}.self_attn.k_proj.weight', 'model.layers.{i}.self_attn.k_proj.weight', 'rotaryK'],
  ['layers.{i}.self_attn.k_proj.bias', 'model.layers.{i}.self_attn.k_proj.bias', 'rotaryK'],
  ['layers.{i}.self_attn.v_proj.weight', 'model.layers.{i}.self_attn.v_proj.weight'],
  ['layers.{i}.self_attn.v_proj.bias', 'model.layers.{i}.self_attn.v_proj.bias'],
  ['layers.{i}.self_attn.o_proj.weight', 'model.layers.{i}.self_attn.o_proj.weight'],
  ['layers.{i}.self_attn.o_proj.bias', 'model.layers.{i}.self_attn.o_proj.bias'],
  ['layers.{i}.mlp.gate_proj.weight', 'model.layers.{i}.mlp.gate_proj.weight'],
  ['layers.{i}.mlp.gate_proj.bias', 'model.layers.{i}.mlp.gate_proj.bias'],
  ['layers.{i}.mlp.up_proj.weight', 'model.layers.{i}.mlp.up_proj.weight'],
  ['layers.{i}.mlp.up_proj.bias', 'model.layers.{i}.mlp.up_proj.bias'],
  ['layers.{i}.mlp.down_proj.weight', 'model.layers.{i}.mlp.down_proj.weight'],
  ['layers.{i}.mlp.down_proj.bias', 'model.layers.{i}.mlp.down_proj.bias'],
  ['layers.{i}.fam_init', 'model.layers.{i}.fam_init'],
  ['norm.weight', 'model.norm.weight'],
  ['lm_head.weight', 'lm_head.weight'],
];

/** Parameters that a checkpoint may lack (kept at their initialisation). */
export const OPTIONAL_PARAMETERS = /(^|\.)fam_init$/;

function compile(table: NameTable) {
  return table.map(([ours, hf, layout]) => ({
    ours: new RegExp(`^${ours.replace(/\./g, '\\.').replace('{i}', '(\\d+)')}$`),
    hf,
    layout: layout ?? 'same',
  }));
}
const TABLES = { rwkv: compile(RWKV_NAMES), llama: compile(LLAMA_NAMES) };

export interface NameMapping {
  hf: string;
  layout: Layout;
}

/** The file's name and layout of one of our parameters. */
export function hfName(model: CausalLM, ours: string): NameMapping {
  const table = model instanceof RWKV4Model ? TABLES.rwkv : TABLES.llama;
  for (const rule of table) {
    const m = rule.ours.exec(ours);
    if (m) return { hf: rule.hf.replace('{i}', m[1] ?? ''), layout: rule.layout };
  }
  throw new Error(`hub: no Hugging Face name for parameter '${ours}' (the name table is incomplete)`);
}

/** The file's shape of a parameter of shape `shape`. */
export function hfShape(shape: readonly number[], layout: Layout): number[] {
  return layout === 'mix' ? [1, 1, ...shape] : [...shape];
}

/**
 * Permutes the rows of a q_proj/k_proj tensor (weight [heads·D, in] or bias
 * [heads·D]) between transformers' order (pair i = rows i, i + D/2 of a head)
 * and ours (pair i = rows 2i, 2i + 1). `toHf` chooses the direction.
 */
export function permuteRotaryRows(bytes: Uint8Array, shape: readonly number[], headDim: number, toHf: boolean) {
  const rows = shape[0]!;
  const rowBytes = bytes.length / rows;
  const out = new Uint8Array(bytes.length);
  const half = headDim / 2;
  for (let r = 0; r < rows; r++) {
    const head = Math.floor(r / headDim),
      j = r % headDim;
    // ours row (2i + s) ↔ transformers row (i + s·D/2)
    const i = j >> 1,
      s = j & 1;
    const oursRow = r,
      hfRow = head * headDim + i + s * half;
    const [from, to] = toHf ? [oursRow, hfRow] : [hfRow, oursRow];
    out.set(bytes.subarray(from * rowBytes, (from + 1) * rowBytes), to * rowBytes);
  }
  return out;
}

export function headDimOf(model: CausalLM): number {
  return model instanceof LlamaModel ? model.options.headDim : 0;
}

export const SUPPORTED_ARCHITECTURES = [
  'RwkvForCausalLM',
  'LlamaForCausalLM',
  'MistralForCausalLM',
  'Qwen2ForCausalLM',
] as const;

interface Placement {
  device: DeviceSpec;
  dtype: DType;
  /** undefined: config.json's `fam` if any; null: none. */
  fam?: LlamaFamOptions | null;
}

/** The FAM settings config.json records (hub.saveModel writes them as `fam`). */
function famFromConfig(config: Record<string, unknown>, fn: string): LlamaFamOptions | null {
  const fam = config.fam;
  if (fam === undefined || fam === null) return null;
  if (typeof fam !== 'object') throw new RangeError(`${fn}: config.json fam must be an object`);
  const f = fam as Record<string, unknown>;
  return {
    blockSize: num(f, 'block_size', `${fn}: config.json fam`),
    memoryBlocks: num(f, 'memory_blocks', `${fn}: config.json fam`),
    famLength: num(f, 'fam_length', `${fn}: config.json fam`),
  };
}

function num(config: Record<string, unknown>, key: string, fn: string, fallback?: number): number {
  const v = config[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new RangeError(`${fn}: config.json lacks ${key}`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${fn}: config.json ${key} must be a number`);
  return v;
}

/**
 * RoPE settings from either config layout: transformers 4 (rope_theta,
 * rope_scaling) or 5 (rope_parameters: { rope_type, rope_theta, ... }).
 */
export function ropeSettings(
  config: Record<string, unknown>,
  fn: string,
): { theta: number; scaling: LlamaRopeScaling | null } {
  const params = (config.rope_parameters ?? null) as Record<string, unknown> | null;
  const scaling = (params ?? config.rope_scaling ?? null) as Record<string, unknown> | null;
  const theta = num(params && params.rope_theta !== undefined ? params : config, 'rope_theta', fn, 10000);
  const type = scaling ? (scaling.rope_type ?? scaling.type ?? 'default') : 'default';
  if (type === 'default') return { theta, scaling: null };
  if (type !== 'llama3') {
    throw new RangeError(`${fn}: rope scaling type '${String(type)}' is not supported (supported: default, llama3)`);
  }
  return {
    theta,
    scaling: {
      ropeType: 'llama3',
      factor: num(scaling!, 'factor', fn),
      lowFreqFactor: num(scaling!, 'low_freq_factor', fn),
      highFreqFactor: num(scaling!, 'high_freq_factor', fn),
      originalMaxPositionEmbeddings: num(scaling!, 'original_max_position_embeddings', fn),
    },
  };
}

/** Our model for a config.json (its architecture already checked). */
export function buildModel(architecture: string, config: Record<string, unknown>, p: Placement, fn: string): CausalLM {
  if (architecture === 'RwkvForCausalLM') {
    if (p.fam) throw new RangeError(`${fn}: fam applies to Llama-family models, not ${architecture}`);
    const hidden = num(config, 'hidden_size', fn);
    const model = new RWKV4Model({
      vocabSize: num(config, 'vocab_size', fn),
      dModel: hidden,
      nLayers: num(config, 'num_hidden_layers', fn),
      attentionSize: num(config, 'attention_hidden_size', fn, hidden),
      intermediateSize: num(config, 'intermediate_size', fn, 4 * hidden),
      layerNormEps: num(config, 'layer_norm_epsilon', fn, 1e-5),
      device: p.device,
      dtype: p.dtype,
    });
    model.config = { ...config };
    return model;
  }
  const act = config.hidden_act ?? 'silu';
  if (act !== 'silu') throw new RangeError(`${fn}: hidden_act '${String(act)}' is not supported (supported: silu)`);
  const hidden = num(config, 'hidden_size', fn);
  const heads = num(config, 'num_attention_heads', fn);
  const rope = ropeSettings(config, fn);
  const qwen = architecture === 'Qwen2ForCausalLM';
  const fam = p.fam === undefined ? famFromConfig(config, fn) : p.fam;
  const model = new LlamaModel({
    vocabSize: num(config, 'vocab_size', fn),
    dModel: hidden,
    nLayers: num(config, 'num_hidden_layers', fn),
    nHeads: heads,
    nKvHeads: num(config, 'num_key_value_heads', fn, heads),
    headDim: num(config, 'head_dim', fn, hidden / heads),
    intermediateSize: num(config, 'intermediate_size', fn),
    rmsNormEps: num(config, 'rms_norm_eps', fn, 1e-6),
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    tieWordEmbeddings: config.tie_word_embeddings === true,
    qkvBias: qwen || config.attention_bias === true,
    outputBias: !qwen && config.attention_bias === true,
    mlpBias: config.mlp_bias === true,
    ...(fam ? { fam } : {}),
    device: p.device,
    dtype: p.dtype,
  });
  // The config describes the model as built: its FAM settings, or none.
  const { fam: _recorded, ...rest } = config;
  model.config = fam ? { ...rest, fam: model.config.fam } : rest;
  return model;
}
