// data: JSON Lines and TRL's dataset formats and tokenization (docs/api.md "Pretrained models, tokenizers and data").
export { readJsonl } from './jsonl';
export { tokenizePreference, tokenizeText, IGNORE_INDEX } from './tokenize';
export type { PreferenceTokens, TextTokens } from './tokenize';
