// hub.loadModel / hub.saveModel: Hugging Face model directories (docs/api.md,
// "Pretrained models, tokenizers and data").
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { defaultDevice, usableDevice, type DeviceSpec } from '../device';
import { checkDType, type DType } from '../dtype';
import { native } from '../native';
import { Tensor, checkTensor } from '../tensor';
import { checkInteger, checkOptions } from '../validate';
import { noGrad } from '../autograd/engine';
import * as dense from '../kernels/dense';
import { RWKV4Model } from '../nn/rwkv4';
import { LlamaModel, type LlamaFamOptions } from '../nn/llama';
import type { RawTensor } from '../safetensors';
import { LORA_PARAMETER } from '../nn/lora';
import { CheckpointReader, readJsonFile, writeJsonFile, writeWeights, type WeightEntry } from './checkpoint';
import {
  OPTIONAL_PARAMETERS,
  SUPPORTED_ARCHITECTURES,
  buildModel,
  headDimOf,
  hfName,
  hfShape,
  permuteRotaryRows,
  type CausalLM,
} from './architectures';

export type { CausalLM } from './architectures';

export interface LoadModelOptions {
  device?: DeviceSpec;
  dtype?: 'float32' | 'bfloat16' | 'float16';
  /**
   * Run a Llama-family model as a TransformerFAM. Default: the FAM settings
   * config.json records (`fam`, written by hub.saveModel for a model trained
   * with FAM), else none; `null` runs full causal attention regardless.
   */
  fam?: LlamaFamOptions | null;
}

const TORCH_DTYPES: Record<string, DType> = { float32: 'float32', bfloat16: 'bfloat16', float16: 'float16' };

/** The checkpoint's dtype: config's dtype (5.x) or torch_dtype (4.x), else the first tensor's. */
function checkpointDtype(config: Record<string, unknown>, reader: CheckpointReader): DType {
  const named = config.dtype ?? config.torch_dtype;
  if (typeof named === 'string' && TORCH_DTYPES[named]) return TORCH_DTYPES[named];
  const first = reader.names[0];
  return first ? reader.info(first).dtype : 'float32';
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Checks a directory's config without reading weights: its architecture, or a RangeError. */
async function readConfig(dir: string, fn: string): Promise<{ config: Record<string, unknown>; architecture: string }> {
  const file = path.join(dir, 'config.json');
  const config = await readJsonFile(file, fn);
  if (!config) throw new RangeError(`${fn}: ${dir} has no config.json`);
  const archs = config.architectures;
  const architecture = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : undefined;
  if (!architecture || !(SUPPORTED_ARCHITECTURES as readonly string[]).includes(architecture)) {
    throw new RangeError(
      `${fn}: architecture ${architecture === undefined ? '(none given)' : `'${architecture}'`} in ${file} is not ` +
        `supported; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`,
    );
  }
  return { config, architecture };
}

/**
 * Stored bytes into a parameter: onto its device in the stored dtype (no
 * float32 detour for bf16), converted there if the parameter's dtype differs.
 */
export function copyInto(param: Tensor, raw: RawTensor): void {
  const stored = new Tensor(
    native().fromRaw({ bytes: raw.bytes, shape: param.shape, dtype: raw.dtype, device: param.device.toString() }),
  );
  const converted = stored.dtype === param.dtype ? stored : stored.to(param.dtype);
  noGrad(() => dense.copyInto_(param, converted));
  if (converted !== stored) converted.dispose();
  stored.dispose();
}

export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<CausalLM> {
  const fn = 'hub.loadModel';
  if (typeof dir !== 'string') throw new TypeError(`${fn}: dir must be a string`);
  checkOptions(opts, fn, ['device', 'dtype', 'fam']);
  const device = opts.device === undefined ? defaultDevice() : usableDevice(opts.device, fn);
  if (opts.dtype !== undefined && !TORCH_DTYPES[checkDType(opts.dtype, fn)]) {
    throw new TypeError(`${fn}: dtype must be 'float32', 'bfloat16' or 'float16', got '${opts.dtype}'`);
  }
  const { config, architecture } = await readConfig(dir, fn);
  const reader = await CheckpointReader.open(dir, fn);
  let model: CausalLM | undefined;
  try {
    const dtype = opts.dtype ?? (device.kind === 'cpu' ? 'float32' : checkpointDtype(config, reader));
    model = buildModel(architecture, config, { device, dtype, fam: opts.fam }, fn);
    const headDim = headDimOf(model);
    for (const [ours, param] of model.namedParameters()) {
      const { hf, layout } = hfName(model, ours);
      if (!reader.has(hf)) {
        if (OPTIONAL_PARAMETERS.test(ours)) continue;
        throw new RangeError(`${fn}: tensor ${hf} is missing from ${reader.description} in ${dir}`);
      }
      const expected = hfShape(param.shape, layout);
      const info = reader.info(hf);
      if (!sameShape(info.shape, expected)) {
        throw new RangeError(
          `${fn}: tensor ${hf} in ${dir} has shape [${info.shape.join(',')}], expected [${expected.join(',')}]`,
        );
      }
      const raw = await reader.readRaw(hf);
      const rotary = layout === 'rotaryQ' || layout === 'rotaryK';
      copyInto(param, { ...raw, bytes: rotary ? permuteRotaryRows(raw.bytes, info.shape, headDim, false) : raw.bytes });
    }
    model.generationConfig = await readJsonFile(path.join(dir, 'generation_config.json'), fn);
    return model;
  } catch (e) {
    model?.dispose();
    throw e;
  } finally {
    await reader.close();
  }
}

export interface SaveModelOptions {
  /** Default: the parameters' dtype. */
  dtype?: 'float32' | 'bfloat16' | 'float16';
  /** Largest shard in bytes before the weights are split (transformers' max_shard_size); default 5e9. */
  maxShardBytes?: number;
}

export async function saveModel(model: CausalLM, dir: string, opts: SaveModelOptions = {}): Promise<void> {
  const fn = 'hub.saveModel';
  if (!(model instanceof RWKV4Model) && !(model instanceof LlamaModel)) {
    throw new TypeError(`${fn}: model must be an nn.RWKV4Model or nn.LlamaModel`);
  }
  if (typeof dir !== 'string') throw new TypeError(`${fn}: dir must be a string`);
  checkOptions(opts, fn, ['dtype', 'maxShardBytes']);
  // LoRA adapters are not part of the model's checkpoint (hub.saveAdapter writes them).
  const named = model.namedParameters().filter(([name]) => !LORA_PARAMETER.test(name));
  const paramDtype = (model instanceof RWKV4Model ? model.emb.weight : model.embedTokens.weight).dtype;
  const dtype: DType = opts.dtype === undefined ? paramDtype : checkDType(opts.dtype, fn);
  if (!TORCH_DTYPES[dtype])
    throw new TypeError(`${fn}: dtype must be 'float32', 'bfloat16' or 'float16', got '${dtype}'`);
  const maxShardBytes =
    opts.maxShardBytes === undefined ? 5e9 : checkInteger(opts.maxShardBytes, fn, 'maxShardBytes', 1);
  const headDim = headDimOf(model);
  const entries: WeightEntry[] = named.map(([ours, param]) => {
    checkTensor(param, fn, ours);
    const { hf, layout } = hfName(model, ours);
    const shape = hfShape(param.shape, layout);
    return {
      name: hf,
      dtype,
      shape,
      read: () => {
        const t = param.dtype === dtype ? param : param.to(dtype);
        const bytes = native().readRaw(t._handleFor(fn, ours));
        if (t !== param) t.dispose();
        return layout === 'rotaryQ' || layout === 'rotaryK' ? permuteRotaryRows(bytes, shape, headDim, true) : bytes;
      },
    };
  });
  await fs.mkdir(dir, { recursive: true });
  await writeWeights(dir, entries, maxShardBytes);
  // Both spellings of the dtype: transformers 4 reads torch_dtype, 5 reads dtype.
  await writeJsonFile(path.join(dir, 'config.json'), { ...model.config, torch_dtype: dtype, dtype });
  const generation = model.generationConfig ?? {
    ...(model.config.bos_token_id !== undefined ? { bos_token_id: model.config.bos_token_id } : {}),
    ...(model.config.eos_token_id !== undefined ? { eos_token_id: model.config.eos_token_id } : {}),
  };
  await writeJsonFile(path.join(dir, 'generation_config.json'), generation);
}
