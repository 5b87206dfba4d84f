// The language-model head as the losses from hidden states take it
// (losses.linearCrossEntropy / linearOrpo: docs/api.md "Losses from hidden
// states"), for the models that expose hiddenStates(tokens) and head.
import type { Tensor } from '../tensor';
import { Linear } from './layers';
import { LoRA } from './lora';

/** A model whose logits are head.forward(hiddenStates(tokens)): nn.RWKV4Model, FamTransformerModel, LlamaModel. */
export interface HiddenStateModel {
  hiddenStates(tokens: Tensor): Tensor;
  readonly head: Linear;
}

/** The head's weight [V,d] and bias [V] (absent without one). */
export interface LossHead {
  weight: Tensor;
  bias?: Tensor;
}

/**
 * The head of `model` for a loss from hidden states, or null when the model
 * has no hiddenStates/head or its head carries LoRA adapters (its output is
 * then not hidden·weightᵀ + bias: use the logits, model.forward, instead).
 */
export function lossHead(model: object): LossHead | null {
  const m = model as Partial<HiddenStateModel>;
  if (typeof m.hiddenStates !== 'function' || !(m.head instanceof Linear) || LoRA.adapts(m.head)) return null;
  return m.head.bias ? { weight: m.head.weight, bias: m.head.bias } : { weight: m.head.weight };
}
