// hub.saveAdapter / hub.loadAdapter: LoRA adapters in PEFT's layout,
// adapter_config.json + adapter_model.safetensors with tensors named
// base_model.model.<transformers module>.lora_A.weight / .lora_B.weight.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { native } from '../native';
import { Tensor } from '../tensor';
import { DTYPE_BYTES, SafetensorsReader, writeSafetensorsRaw } from '../safetensors';
import { LoRA } from '../nn/lora';
import { RWKV4Model } from '../nn/rwkv4';
import { LlamaModel } from '../nn/llama';
import { readJsonFile, writeJsonFile } from './checkpoint';
import { copyInto } from './models';
import { headDimOf, hfName, permuteRotaryRows, type CausalLM } from './architectures';

const CONFIG_FILE = 'adapter_config.json';
const WEIGHTS_FILE = 'adapter_model.safetensors';

function checkModel(model: unknown, fn: string): asserts model is CausalLM {
  if (!(model instanceof RWKV4Model) && !(model instanceof LlamaModel)) {
    throw new TypeError(`${fn}: model must be an nn.RWKV4Model or nn.LlamaModel`);
  }
}

/** Each adapted Linear: its PEFT tensor names, and whether lora_B's rows are in RoPE-permuted order. */
function adapterTensors(model: CausalLM, modules: string[]) {
  return modules.map((name) => {
    const { hf, layout } = hfName(model, `${name}.weight`);
    const peft = `base_model.model.${hf.replace(/\.weight$/, '')}`;
    return { name, a: `${peft}.lora_A.weight`, b: `${peft}.lora_B.weight`, rotary: layout.startsWith('rotary') };
  });
}

function moduleParam(model: CausalLM, name: string): Tensor {
  const t = model.stateDict()[name];
  if (!t) throw new Error(`hub: the model has no parameter ${name}`);
  return t;
}

export async function saveAdapter(model: CausalLM, dir: string): Promise<void> {
  const fn = 'hub.saveAdapter';
  checkModel(model, fn);
  if (typeof dir !== 'string') throw new TypeError(`${fn}: dir must be a string`);
  const config = LoRA.config(model);
  if (!config) throw new RangeError(`${fn}: the model has no LoRA adapters (nn.LoRA.apply first)`);
  const headDim = headDimOf(model);
  const entries: { name: string; tensor: Tensor; rotary: boolean }[] = [];
  for (const m of adapterTensors(model, config.modules)) {
    entries.push({ name: m.a, tensor: moduleParam(model, `${m.name}.lora_A.weight`), rotary: false });
    entries.push({ name: m.b, tensor: moduleParam(model, `${m.name}.lora_B.weight`), rotary: m.rotary });
  }
  const byName = new Map(entries.map((e) => [e.name, e]));
  await fs.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `${WEIGHTS_FILE}.tmp-${process.pid}`);
  await writeSafetensorsRaw(
    tmp,
    entries.map((e) => ({
      name: e.name,
      dtype: e.tensor.dtype,
      shape: e.tensor.shape,
      byteLength: e.tensor.numel * DTYPE_BYTES[e.tensor.dtype],
    })),
    (name) => {
      const e = byName.get(name)!;
      const bytes = native().readRaw(e.tensor._handleFor(fn, name));
      return e.rotary ? permuteRotaryRows(bytes, e.tensor.shape, headDim, true) : bytes;
    },
    { format: 'pt' },
  );
  await fs.rename(tmp, path.join(dir, WEIGHTS_FILE));
  const base = model.config._name_or_path;
  await writeJsonFile(path.join(dir, CONFIG_FILE), {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: typeof base === 'string' ? base : null,
    r: config.rank,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    target_modules: config.targets,
    use_rslora: config.rsLora,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    layers_to_transform: null,
    use_dora: false,
    rank_pattern: {},
    alpha_pattern: {},
  });
}

/** Applies LoRA as adapter_config.json says and loads the adapter's tensors. */
export async function loadAdapter(model: CausalLM, dir: string): Promise<void> {
  const fn = 'hub.loadAdapter';
  checkModel(model, fn);
  if (typeof dir !== 'string') throw new TypeError(`${fn}: dir must be a string`);
  const file = path.join(dir, CONFIG_FILE);
  const c = await readJsonFile(file, fn);
  if (!c) throw new RangeError(`${fn}: ${dir} has no ${CONFIG_FILE}`);
  if (c.peft_type !== 'LORA') throw new RangeError(`${fn}: ${file}: peft_type ${String(c.peft_type)} is not LORA`);
  const unsupported = [
    c.use_dora === true && 'use_dora',
    c.bias !== undefined && c.bias !== 'none' && `bias '${String(c.bias)}'`,
    c.fan_in_fan_out === true && 'fan_in_fan_out',
    c.modules_to_save && (c.modules_to_save as unknown[]).length > 0 && 'modules_to_save',
    c.layers_to_transform !== undefined && c.layers_to_transform !== null && 'layers_to_transform',
    c.rank_pattern && Object.keys(c.rank_pattern).length > 0 && 'rank_pattern',
    c.alpha_pattern && Object.keys(c.alpha_pattern).length > 0 && 'alpha_pattern',
  ].filter(Boolean);
  if (unsupported.length) throw new RangeError(`${fn}: ${file}: not supported: ${unsupported.join(', ')}`);
  const targets = c.target_modules;
  if (!Array.isArray(targets) || !targets.every((t) => typeof t === 'string')) {
    throw new RangeError(`${fn}: ${file}: target_modules must be a list of module names`);
  }
  const weights = await SafetensorsReader.open(path.join(dir, WEIGHTS_FILE), fn);
  try {
    const config = LoRA.apply(model, {
      rank: c.r as number,
      alpha: (c.lora_alpha as number | undefined) ?? 8,
      dropout: (c.lora_dropout as number | undefined) ?? 0,
      targets: targets as string[],
      rsLora: c.use_rslora === true,
    });
    const headDim = headDimOf(model);
    for (const m of adapterTensors(model, config.modules)) {
      for (const [file, ours, rotary] of [
        [m.a, `${m.name}.lora_A.weight`, false],
        [m.b, `${m.name}.lora_B.weight`, m.rotary],
      ] as const) {
        const param = moduleParam(model, ours);
        if (!weights.has(file)) throw new RangeError(`${fn}: tensor ${file} is missing from ${weights.path}`);
        const info = weights.info(file);
        if (info.shape.join(',') !== param.shape.join(',')) {
          throw new RangeError(
            `${fn}: tensor ${file} has shape [${info.shape.join(',')}], expected [${param.shape.join(',')}]`,
          );
        }
        const raw = await weights.readRaw(file);
        copyInto(param, {
          ...raw,
          bytes: rotary ? permuteRotaryRows(raw.bytes, info.shape, headDim, false) : raw.bytes,
        });
      }
    }
  } catch (e) {
    if (LoRA.config(model)) LoRA.remove(model);
    throw e;
  } finally {
    await weights.close();
  }
}
