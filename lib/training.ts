// The training API (API.md "Training"): autograd, ops, layers, optimisers.
import * as ops from './autograd/ops';
import { Linear, Embedding, LayerNorm, RMSNorm } from './nn/layers';
import { Module } from './nn/module';
import { RWKV4Model, RWKV4Block, disposeRWKV4State } from './nn/rwkv4';
import { FamTransformerModel, FamTransformerBlock, disposeFamState } from './nn/fam';
import { AdamW, clipGradNorm, cosineSchedule } from './optim/adamw';

export { ops };
export { noGrad, isGradEnabled } from './autograd/engine';
export { gradcheck } from './autograd/gradcheck';
export const nn = {
  Module, Linear, Embedding, LayerNorm, RMSNorm,
  RWKV4Model, RWKV4Block, disposeRWKV4State,
  FamTransformerModel, FamTransformerBlock, disposeFamState,
};
export const optim = { AdamW, cosineSchedule };
export { clipGradNorm };
export type { RWKV4State, RWKV4Options } from './nn/rwkv4';
export type { FamModelOptions, FamState } from './nn/fam';
export type { AdamWOptions } from './optim/adamw';
