// hub: Hugging Face directories in and out (docs/api.md "Pretrained models, tokenizers and data").
export { loadTokenizer } from './tokenizer';
export type { Tokenizer, ChatMessage } from './tokenizer';
