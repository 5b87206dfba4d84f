// lmkernels: CUDA and C++ training kernels for language models.
export { Device, devices, defaultDevice, setDefaultDevice, cudaAvailable, synchronize } from './device';
export type { DeviceSpec, DeviceKind } from './device';
export { backendInfo } from './backend';
export type { BackendInfo } from './backend';
export type { DType } from './dtype';
export { Tensor } from './tensor';
export { tensor, zeros, ones, full, empty, arange, randn, rand, manualSeed } from './creation';
export type { CreationOptions, NestedNumbers } from './creation';
export { tidy, keep } from './scope';
export { memory, emptyCache } from './memory';
export type { MemoryInfo } from './memory';
export { checkIndices } from './debug';
export { saveSafetensors, loadSafetensors, safetensorsMetadata } from './safetensors';
export { wkv4 } from './kernels/wkv4';
export { fam } from './kernels/fam';
export { ops, nn, optim, noGrad, isGradEnabled, gradcheck, clipGradNorm } from './training';
export type { RWKV4State, RWKV4Options, AdamWOptions } from './training';
export { losses } from './kernels/losses';
export type { Wkv4ForwardOptions, Wkv4BackwardOptions, Wkv4StepOptions } from './kernels/wkv4';
export * as hub from './hub/index';
export { generate } from './generate';
export type { GenerateOptions } from './generate';
export type {
  FamAttentionResult,
  FamBlockAttentionGrads,
  FamMemoryAttentionGrads,
  FamBlockAttentionOptions,
  FamBlockAttentionBackwardOptions,
  FamMemoryAttentionOptions,
  FamMemoryAttentionBackwardOptions,
} from './kernels/fam';
export type {
  CrossEntropyOptions,
  CrossEntropyResult,
  Goldfish,
  GoldfishLossOptions,
  GoldfishLossResult,
  GoldfishMaskOptions,
  GoldfishStrategy,
  LinearCrossEntropyOptions,
  LinearCrossEntropyResult,
  LinearOrpoOptions,
  LinearOrpoResult,
  LossReduction,
  OrpoMetrics,
  OrpoOptions,
  OrpoResult,
  ShiftLabelsOptions,
} from './kernels/losses';
export type { FamModelOptions, FamState } from './training';
export type { Tokenizer, ChatMessage } from './hub/index';
export * as data from './data/index';
export * as dist from './distributed/index';
export type { DistBackend, DistInitOptions, DistReduceOp, DistWorld } from './distributed/index';
export type { PreferenceTokens, TextTokens } from './data/index';
