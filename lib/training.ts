// The training API (docs/api.md "Training"): autograd, ops, layers, optimisers.
export * as ops from './autograd/ops';
export * as nn from './nn/index';
export * as optim from './optim/index';
export { noGrad, isGradEnabled } from './autograd/engine';
export { gradcheck } from './autograd/gradcheck';
export { clipGradNorm } from './optim/clip';
export type { RWKV4State, RWKV4Options, FamModelOptions, FamState } from './nn/index';
export type { AdamWOptions } from './optim/index';
