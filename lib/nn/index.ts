// `nn`: layers and models.
export { Module } from './module';
export { Linear, Embedding, LayerNorm, RMSNorm } from './layers';
export type { LayerOptions } from './layers';
export { RWKV4Model, RWKV4Block, RWKV4TimeMix, RWKV4ChannelMix, disposeRWKV4State } from './rwkv4';
export type { RWKV4State, RWKV4Options } from './rwkv4';
export { FamTransformerModel, FamTransformerBlock, disposeFamState } from './fam';
export type { FamModelOptions, FamState, FamLayerState } from './fam';
export { LlamaModel, LlamaDecoderLayer, LlamaAttention, LlamaMLP, disposeLlamaCache } from './llama';
export type { LlamaOptions, LlamaFamOptions, LlamaRopeScaling, LlamaCache, LlamaLayerCache } from './llama';
export { LoRA } from './lora';
export { lossHead } from './head';
export type { HiddenStateModel, LossHead } from './head';
export type { LoRAOptions, LoRAConfig } from './lora';
