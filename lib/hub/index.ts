// `hub`: Hugging Face model directories in and out (docs/api.md, "Pretrained
// models, tokenizers and data").
export { loadModel, saveModel } from './models';
export { loadAdapter, saveAdapter } from './adapters';
export type { CausalLM, LoadModelOptions, SaveModelOptions } from './models';
export { loadTokenizer } from './tokenizer';
export type { Tokenizer, ChatMessage } from './tokenizer';
