// The tokenizer of the examples' byte-level models as Hugging Face files
// (tokenizer.json + tokenizer_config.json): 256 tokens, id = byte value, no
// special tokens, so its ids are the UTF-8 bytes of the text, as the models
// were trained. The construction is the one of
// scripts/make-tokenizer-fixtures.py (bytes_tokenizer, which wrote
// test/fixtures/tokenizers/bytes/ with Python `tokenizers`): a byte-level BPE
// with no merges and no regex split, whose vocabulary names each byte by
// GPT-2's printable stand-in character. hub.loadTokenizer (and Python
// `tokenizers`/transformers) read these files; nothing here encodes text.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as lmk from 'lmkernels';

/**
 * GPT-2's bytes_to_unicode: the printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ')
 * stand for themselves, the other 68 bytes for U+0100, U+0101, ... in byte
 * order. The ByteLevel pre-tokenizer and decoder map bytes to these characters
 * and back.
 */
export function byteStandIns(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : next++));
}

/** tokenizer.json of the 256-byte vocabulary, field for field as Python `tokenizers` (0.23) saves it. */
export function byteTokenizerJson(): Record<string, unknown> {
  const vocab = Object.fromEntries(byteStandIns().map((ch, b) => [ch, b]));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    post_processor: null,
    // Python writes the decoder's fields with these values whatever it was built with; the
    // ByteLevel decoder only maps the stand-ins back to bytes and does not read them.
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/** tokenizer_config.json: transformers' fast tokenizer class, no special tokens, no length limit to speak of. */
export const BYTE_TOKENIZER_CONFIG = {
  tokenizer_class: 'PreTrainedTokenizerFast',
  clean_up_tokenization_spaces: false,
  model_max_length: 1048576,
} as const;

/** Writes tokenizer.json and tokenizer_config.json of the 256-byte vocabulary into `dir` (which must exist). */
export function writeByteTokenizer(dir: string): void {
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(byteTokenizerJson(), null, 2) + '\n');
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(BYTE_TOKENIZER_CONFIG, null, 2) + '\n');
}

/**
 * A byte-level model as a Hugging Face directory: hub.saveModel's config.json,
 * model.safetensors and generation_config.json, and the tokenizer files above.
 */
export async function saveByteLevelModel(model: lmk.hub.CausalLM, dir: string): Promise<void> {
  await lmk.hub.saveModel(model, dir);
  writeByteTokenizer(dir);
}
