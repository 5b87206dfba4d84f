// hub.loadTokenizer (docs/api.md "Pretrained models, tokenizers and data"):
// a Hugging Face tokenizer directory (tokenizer.json, tokenizer_config.json,
// chat_template.jinja) read with @huggingface/tokenizers (the tokenizer
// pipeline: normalizer, pre-tokenizer, model, post-processor, decoder) and
// @huggingface/jinja (chat templates). No tokenizer algorithm of our own.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
// Types only here: the libraries are loaded by loadTokenizer, so importing
// lmkernels does not load them (nor need them installed to run kernels).
import type { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import type { Template } from '@huggingface/jinja';
import { describe } from '../validate';
import { checkOptions } from '../validate';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface Tokenizer {
  /** Tokens in the vocabulary, added tokens included (Python's len(tokenizer)). */
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  /** undefined when the tokenizer has no pad token. */
  readonly padTokenId?: number;
  encode(text: string, opts?: { addSpecialTokens?: boolean }): Int32Array;
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
  applyChatTemplate(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
}

interface TokenizerJson {
  model?: { type?: string };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

/** A special token in tokenizer_config.json: a string or a serialised AddedToken ({ content, ... }). */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** tokenizer_config.json's chat_template: a string, or a list of { name, template } (the 'default' one). */
function chatTemplateOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value as { name?: string; template?: string }[];
    return (named.find((t) => t.name === 'default') ?? named[0])?.template;
  }
  return undefined;
}

async function readJson(path: string, fn: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`${fn}: cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`${fn}: ${path} is not valid JSON: ${(error as Error).message}`);
  }
}

class HubTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
  private readonly template?: Template;
  private readonly specialTokens: Record<string, string>;
  /** transformers 5 applies clean_up_tokenization_spaces only to WordPiece models. */
  private readonly cleanUpSpaces: boolean;

  constructor(
    private readonly impl: HfTokenizer,
    json: TokenizerJson,
    config: Record<string, unknown>,
    chatTemplate: string | undefined,
    makeTemplate: (source: string) => Template,
    private readonly dir: string,
  ) {
    this.vocabSize = impl.get_vocab(true).size;
    this.specialTokens = {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
      const text = tokenText(config[key]);
      if (text !== undefined) this.specialTokens[key] = text;
    }
    const idOf = (key: string) => {
      const text = this.specialTokens[key];
      return text === undefined ? undefined : impl.token_to_id(text);
    };
    this.bosTokenId = idOf('bos_token');
    this.eosTokenId = idOf('eos_token');
    this.padTokenId = idOf('pad_token');
    this.cleanUpSpaces = json.model?.type === 'WordPiece' && config.clean_up_tokenization_spaces === true;
    if (chatTemplate !== undefined) {
      try {
        this.template = makeTemplate(chatTemplate);
      } catch (error) {
        throw new Error(`hub.loadTokenizer: the chat template in ${dir} does not parse: ${(error as Error).message}`);
      }
    }
  }

  encode(text: string, opts?: { addSpecialTokens?: boolean }): Int32Array {
    const fn = 'Tokenizer.encode';
    if (typeof text !== 'string') throw new TypeError(`${fn}: text must be a string, got ${describe(text)}`);
    const { addSpecialTokens = true } = checkOptions(opts, fn, ['addSpecialTokens']) as { addSpecialTokens?: unknown };
    if (typeof addSpecialTokens !== 'boolean') {
      throw new TypeError(`${fn}: addSpecialTokens must be a boolean, got ${describe(addSpecialTokens)}`);
    }
    return Int32Array.from(this.impl.encode(text, { add_special_tokens: addSpecialTokens }).ids);
  }

  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string {
    const fn = 'Tokenizer.decode';
    if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
      throw new TypeError(`${fn}: ids must be an array of token ids, got ${describe(ids)}`);
    }
    const { skipSpecialTokens = false } = checkOptions(opts, fn, ['skipSpecialTokens']) as {
      skipSpecialTokens?: unknown;
    };
    if (typeof skipSpecialTokens !== 'boolean') {
      throw new TypeError(`${fn}: skipSpecialTokens must be a boolean, got ${describe(skipSpecialTokens)}`);
    }
    const list = Array.from(ids);
    list.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`${fn}: ids[${i}] must be an integer in [0, ${this.vocabSize}), got ${id}`);
      }
    });
    if (list.length === 0) return '';
    return this.impl.decode(list, {
      skip_special_tokens: skipSpecialTokens,
      clean_up_tokenization_spaces: this.cleanUpSpaces,
    });
  }

  applyChatTemplate(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string {
    const fn = 'Tokenizer.applyChatTemplate';
    if (!Array.isArray(messages)) throw new TypeError(`${fn}: messages must be an array, got ${describe(messages)}`);
    messages.forEach((m, i) => {
      if (typeof m !== 'object' || m === null || typeof m.role !== 'string' || typeof m.content !== 'string') {
        throw new TypeError(`${fn}: messages[${i}] must be { role: string, content: string }, got ${describe(m)}`);
      }
    });
    const { addGenerationPrompt = false } = checkOptions(opts, fn, ['addGenerationPrompt']) as {
      addGenerationPrompt?: unknown;
    };
    if (typeof addGenerationPrompt !== 'boolean') {
      throw new TypeError(`${fn}: addGenerationPrompt must be a boolean, got ${describe(addGenerationPrompt)}`);
    }
    if (!this.template) {
      throw new Error(
        `${fn}: the tokenizer in ${this.dir} has no chat template (tokenizer_config.json chat_template or chat_template.jinja)`,
      );
    }
    // The variables transformers passes: the messages, the flag, and the special tokens' text.
    return this.template.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      ...this.specialTokens,
    });
  }
}

/** Reads a Hugging Face tokenizer directory (docs/api.md "Pretrained models, tokenizers and data"). */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const fn = 'hub.loadTokenizer';
  if (typeof dir !== 'string') throw new TypeError(`${fn}: dir must be a string, got ${describe(dir)}`);
  const jsonPath = join(dir, 'tokenizer.json');
  if (!existsSync(jsonPath)) {
    throw new Error(`${fn}: ${jsonPath} not found (a tokenizer directory needs tokenizer.json)`);
  }
  const json = await readJson(jsonPath, fn);
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? await readJson(configPath, fn) : {};
  const templatePath = join(dir, 'chat_template.jinja');
  // As transformers: a chat_template.jinja file is the template; otherwise tokenizer_config.json's.
  const chatTemplate = existsSync(templatePath)
    ? await readFile(templatePath, 'utf8')
    : chatTemplateOf(config.chat_template);
  const [{ Tokenizer: HfTokenizerClass }, { Template: TemplateClass }] = await Promise.all([
    import('@huggingface/tokenizers'),
    import('@huggingface/jinja'),
  ]);
  let impl: HfTokenizer;
  try {
    impl = new HfTokenizerClass(json, config);
  } catch (error) {
    throw new Error(`${fn}: ${jsonPath} is not a tokenizer this library can read: ${(error as Error).message}`);
  }
  return new HubTokenizer(
    impl,
    json as TokenizerJson,
    config,
    chatTemplate,
    (source) => new TemplateClass(source),
    dir,
  );
}
