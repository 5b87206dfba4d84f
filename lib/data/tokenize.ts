// TRL's dataset formats and tokenization (docs/api.md "Pretrained models, tokenizers and data";
// the rules are stated in README.md "Fine-tuning"). Labels are aligned with the ids, as TRL and
// transformers make them (the model's loss shifts them: position t predicts ids[t + 1]);
// positions that are not supervised hold IGNORE_INDEX.
import { describe } from '../validate';
import { checkInteger, checkOptions } from '../validate';
import type { ChatMessage, Tokenizer } from '../hub/tokenizer';

/** The label of a position that is not supervised (PyTorch's and TRL's -100). */
export const IGNORE_INDEX = -100;

type Turns = string | ChatMessage[];

export interface PreferenceTokens {
  chosenIds: Int32Array;
  chosenLabels: Int32Array;
  rejectedIds: Int32Array;
  rejectedLabels: Int32Array;
}

export interface TextTokens {
  inputIds: Int32Array;
  labels: Int32Array;
}

function checkTokenizer(tokenizer: unknown, fn: string): Tokenizer {
  const t = tokenizer as Tokenizer | null;
  if (!t || typeof t.encode !== 'function' || typeof t.applyChatTemplate !== 'function') {
    throw new TypeError(`${fn}: tokenizer must be a Tokenizer (hub.loadTokenizer), got ${describe(tokenizer)}`);
  }
  return t;
}

function checkRow(row: unknown, fn: string): Record<string, unknown> {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) {
    throw new TypeError(`${fn}: row must be an object, got ${describe(row)}`);
  }
  return row as Record<string, unknown>;
}

/** TRL's is_conversational: a list whose first element is an object with a role. */
function isConversation(value: unknown): value is ChatMessage[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    typeof value[0] === 'object' &&
    value[0] !== null &&
    'role' in (value[0] as object)
  );
}

function checkTurns(value: unknown, fn: string, field: string): Turns {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    value.forEach((m, i) => {
      const msg = m as Partial<ChatMessage> | null;
      if (typeof msg !== 'object' || msg === null || typeof msg.role !== 'string' || typeof msg.content !== 'string') {
        throw new TypeError(`${fn}: row.${field}[${i}] must be { role: string, content: string }, got ${describe(m)}`);
      }
    });
    return value as ChatMessage[];
  }
  throw new TypeError(`${fn}: row.${field} must be a string or a list of messages, got ${describe(value)}`);
}

function sameMessage(a: ChatMessage, b: ChatMessage): boolean {
  const ka = Object.keys(a).sort(),
    kb = Object.keys(b).sort();
  if (ka.join('\0') !== kb.join('\0')) return false;
  return ka.every((k) => (a as unknown as Record<string, unknown>)[k] === (b as unknown as Record<string, unknown>)[k]);
}

/**
 * TRL's extract_prompt: the implicit prompt is the longest common prefix of chosen and rejected
 * (turns for conversations, characters for strings, a space before the split going to the answers).
 */
function extractPrompt(chosen: Turns, rejected: Turns, fn: string): { prompt: Turns; chosen: Turns; rejected: Turns } {
  if (typeof chosen === 'string' && typeof rejected === 'string') {
    const c = Array.from(chosen),
      r = Array.from(rejected); // code points, as Python indexes strings
    const cut = commonCut(c, r, (a, b) => a === b, fn);
    const split = cut > 0 && c[cut - 1] === ' ' ? cut - 1 : cut;
    return { prompt: c.slice(0, split).join(''), chosen: c.slice(split).join(''), rejected: r.slice(split).join('') };
  }
  if (typeof chosen === 'string' || typeof rejected === 'string') {
    throw new TypeError(`${fn}: row.chosen and row.rejected must both be strings or both be lists of messages`);
  }
  const cut = commonCut(chosen, rejected, sameMessage, fn);
  return { prompt: chosen.slice(0, cut), chosen: chosen.slice(cut), rejected: rejected.slice(cut) };
}

/** The first index where the lists differ; when one is a prefix of the other, TRL's loop ends at min - 1. */
function commonCut<T>(a: T[], b: T[], same: (x: T, y: T) => boolean, fn: string): number {
  const n = Math.min(a.length, b.length);
  if (n === 0) throw new RangeError(`${fn}: row.chosen and row.rejected must not be empty`);
  for (let i = 0; i < n; i++) if (!same(a[i]!, b[i]!)) return i;
  return n - 1;
}

/** Python's os.path.commonprefix of two strings, by code point. */
function commonPrefix(a: string, b: string): string {
  const x = Array.from(a),
    y = Array.from(b);
  let i = 0;
  while (i < x.length && i < y.length && x[i] === y[i]) i++;
  return x.slice(0, i).join('');
}

/**
 * A conversation whose last turn is the assistant's, rendered so that the text stops right after
 * that turn's content (transformers' continue_final_message).
 */
function continueFinalMessage(tokenizer: Tokenizer, messages: ChatMessage[], fn: string): string {
  const rendered = tokenizer.applyChatTemplate(messages);
  const final = messages[messages.length - 1]!.content.trim();
  const at = rendered.lastIndexOf(final);
  if (at < 0) throw new RangeError(`${fn}: the chat template does not render the final message's content verbatim`);
  return rendered.slice(0, at + final.length);
}

/** The prompt rendered for generation (TRL's apply_chat_template for a 'prompt' column). */
function renderPrompt(tokenizer: Tokenizer, prompt: ChatMessage[], fn: string): string {
  if (prompt.length === 0) throw new RangeError(`${fn}: row.prompt must not be an empty conversation`);
  const last = prompt[prompt.length - 1]!.role;
  if (last === 'user' || last === 'tool') return tokenizer.applyChatTemplate(prompt, { addGenerationPrompt: true });
  if (last === 'assistant') return continueFinalMessage(tokenizer, prompt, fn);
  throw new RangeError(`${fn}: the prompt's last message must be from user, tool or assistant, got '${last}'`);
}

/**
 * TRL's maybe_extract_prompt + maybe_apply_chat_template for a preference row: three strings.
 * Conversations are rendered with the chat template; the prompt is the common prefix of the
 * rendered prompt and of each rendered prompt + answer, and each answer is the rest.
 */
function preferenceTexts(
  tokenizer: Tokenizer,
  row: Record<string, unknown>,
  fn: string,
): { prompt: string; chosen: string; rejected: string } {
  if (!('chosen' in row) || !('rejected' in row)) {
    throw new TypeError(
      `${fn}: row must have 'chosen' and 'rejected' (and usually 'prompt'), got keys ${Object.keys(row).join(', ') || 'none'}`,
    );
  }
  let chosen = checkTurns(row.chosen, fn, 'chosen');
  let rejected = checkTurns(row.rejected, fn, 'rejected');
  let prompt: Turns | undefined = 'prompt' in row ? checkTurns(row.prompt, fn, 'prompt') : undefined;
  if (prompt === undefined || isConversation(prompt) !== isConversation(chosen)) {
    ({ prompt, chosen, rejected } = extractPrompt(chosen, rejected, fn));
  }
  if (!isConversation(chosen) && !isConversation(rejected) && !Array.isArray(prompt)) {
    if (typeof chosen !== 'string' || typeof rejected !== 'string') {
      throw new TypeError(`${fn}: row.chosen and row.rejected must both be strings or both be lists of messages`);
    }
    return { prompt, chosen, rejected };
  }
  if (typeof prompt === 'string' || typeof chosen === 'string' || typeof rejected === 'string') {
    throw new TypeError(`${fn}: row.prompt, row.chosen and row.rejected must all be strings or all be message lists`);
  }
  let promptText = renderPrompt(tokenizer, prompt, fn);
  const promptChosen = tokenizer.applyChatTemplate([...prompt, ...chosen]);
  promptText = commonPrefix(promptText, promptChosen);
  const promptRejected = tokenizer.applyChatTemplate([...prompt, ...rejected]);
  promptText = commonPrefix(promptText, promptRejected);
  const cut = (s: string) => Array.from(s).slice(Array.from(promptText).length).join('');
  return { prompt: promptText, chosen: cut(promptChosen), rejected: cut(promptRejected) };
}

function sameIds(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * TRL's build_tokenized_answer: enc(prompt + answer) split after enc(prompt), one token earlier
 * when the tokenizer merged the prompt's last token with the answer's first.
 */
function splitAnswer(tokenizer: Tokenizer, prompt: string, answer: string, fn: string) {
  const full = Array.from(tokenizer.encode(prompt + answer, { addSpecialTokens: false }));
  const promptIds = Array.from(tokenizer.encode(prompt, { addSpecialTokens: false }));
  if (promptIds.length > full.length) {
    throw new RangeError(`${fn}: the prompt alone has more tokens than prompt + answer`);
  }
  let start = promptIds.length;
  if (!sameIds(promptIds, full.slice(0, start))) start -= 1;
  return { promptIds: full.slice(0, Math.max(start, 0)), answerIds: full.slice(Math.max(start, 0)) };
}

/**
 * Tokenizes a preference row as TRL's ORPOTrainer / DPOTrainer (tokenize_row) do; the truncation
 * rules are stated in README.md "Fine-tuning": BOS in front of the prompt and EOS after each
 * answer unless already there (none when the tokenizer has none); when the prompt plus the longer
 * answer exceeds maxLength, the prompt keeps its last maxPromptLength tokens (TRL's 'keep_end',
 * so the BOS goes too), and if that is still too long both answers keep their first
 * maxLength - maxPromptLength tokens. Prompt positions are labelled IGNORE_INDEX.
 */
export function tokenizePreference(
  tokenizer: Tokenizer,
  row: Record<string, unknown>,
  opts: { maxLength: number; maxPromptLength?: number },
): PreferenceTokens {
  const fn = 'data.tokenizePreference';
  checkTokenizer(tokenizer, fn);
  const r = checkRow(row, fn);
  if (opts === undefined) throw new TypeError(`${fn}: options { maxLength } are required`);
  checkOptions(opts, fn, ['maxLength', 'maxPromptLength']);
  const maxLength = checkInteger(opts.maxLength, fn, 'maxLength', 2);
  const maxPromptLength = checkInteger(
    opts.maxPromptLength ?? Math.floor(maxLength / 2),
    fn,
    'maxPromptLength',
    1,
    maxLength - 1,
  );
  const { prompt, chosen, rejected } = preferenceTexts(tokenizer, r, fn);

  const chosenTokens = splitAnswer(tokenizer, prompt, chosen, fn);
  const rejectedTokens = splitAnswer(tokenizer, prompt, rejected, fn);
  const a = chosenTokens.promptIds,
    b = rejectedTokens.promptIds;
  let differing = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) differing++;
  if (differing > 1 || Math.abs(a.length - b.length) > 1) {
    throw new RangeError(
      `${fn}: the prompt tokenizes differently before the chosen and the rejected answer beyond its last token`,
    );
  }
  const bos = tokenizer.bosTokenId,
    eos = tokenizer.eosTokenId;
  for (const t of [chosenTokens, rejectedTokens]) {
    if (bos !== undefined && (t.promptIds.length === 0 || t.promptIds[0] !== bos)) t.promptIds.unshift(bos);
    if (eos !== undefined && (t.answerIds.length === 0 || t.answerIds[t.answerIds.length - 1] !== eos)) {
      t.answerIds.push(eos);
    }
  }
  const longer = Math.max(chosenTokens.answerIds.length, rejectedTokens.answerIds.length);
  for (const t of [chosenTokens, rejectedTokens]) {
    if (t.promptIds.length + longer > maxLength) t.promptIds = t.promptIds.slice(-maxPromptLength);
  }
  for (const t of [chosenTokens, rejectedTokens]) {
    if (t.promptIds.length + longer > maxLength) t.answerIds = t.answerIds.slice(0, maxLength - maxPromptLength);
  }
  const sequence = (t: { promptIds: number[]; answerIds: number[] }) => ({
    ids: Int32Array.from([...t.promptIds, ...t.answerIds]),
    labels: Int32Array.from([...t.promptIds.map(() => IGNORE_INDEX), ...t.answerIds]),
  });
  const c = sequence(chosenTokens),
    j = sequence(rejectedTokens);
  return { chosenIds: c.ids, chosenLabels: c.labels, rejectedIds: j.ids, rejectedLabels: j.labels };
}

/** The text of the EOS token, which TRL appends to plain-text rows that do not end with it. */
function eosText(tokenizer: Tokenizer): string | undefined {
  return tokenizer.eosTokenId === undefined ? undefined : tokenizer.decode([tokenizer.eosTokenId]);
}

function withEos(tokenizer: Tokenizer, text: string): string {
  const eos = eosText(tokenizer);
  return eos === undefined || text.endsWith(eos) ? text : text + eos;
}

/**
 * Tokenizes a row for supervised fine-tuning as TRL's SFTTrainer does: 'text' rows get the EOS
 * text appended unless they end with it and are encoded with special tokens, every token
 * supervised; 'messages' rows are rendered with the chat template and encoded without adding
 * special tokens (the template writes them), every token supervised; 'prompt' + 'completion'
 * rows supervise only the completion (TRL's completion_only_loss). Then ids and labels keep their
 * first maxLength tokens (TRL's 'keep_start').
 */
export function tokenizeText(
  tokenizer: Tokenizer,
  row: Record<string, unknown>,
  opts: { maxLength: number },
): TextTokens {
  const fn = 'data.tokenizeText';
  checkTokenizer(tokenizer, fn);
  const r = checkRow(row, fn);
  if (opts === undefined) throw new TypeError(`${fn}: options { maxLength } are required`);
  checkOptions(opts, fn, ['maxLength']);
  const maxLength = checkInteger(opts.maxLength, fn, 'maxLength', 1);
  let ids: number[];
  let promptLength = 0;
  if ('messages' in r) {
    const messages = checkTurns(r.messages, fn, 'messages');
    if (typeof messages === 'string') throw new TypeError(`${fn}: row.messages must be a list of messages`);
    ids = Array.from(tokenizer.encode(tokenizer.applyChatTemplate(messages), { addSpecialTokens: false }));
  } else if ('text' in r) {
    if (typeof r.text !== 'string') throw new TypeError(`${fn}: row.text must be a string, got ${describe(r.text)}`);
    ids = Array.from(tokenizer.encode(withEos(tokenizer, r.text)));
  } else if ('prompt' in r && 'completion' in r) {
    const prompt = checkTurns(r.prompt, fn, 'prompt');
    const completion = checkTurns(r.completion, fn, 'completion');
    if (typeof prompt === 'string' && typeof completion === 'string') {
      promptLength = tokenizer.encode(prompt).length;
      ids = Array.from(tokenizer.encode(prompt + withEos(tokenizer, completion)));
    } else if (typeof prompt !== 'string' && typeof completion !== 'string') {
      promptLength = tokenizer.encode(renderPrompt(tokenizer, prompt, fn), { addSpecialTokens: false }).length;
      ids = Array.from(
        tokenizer.encode(tokenizer.applyChatTemplate([...prompt, ...completion]), { addSpecialTokens: false }),
      );
    } else {
      throw new TypeError(`${fn}: row.prompt and row.completion must both be strings or both be message lists`);
    }
  } else {
    throw new TypeError(
      `${fn}: row must have 'text', 'messages', or 'prompt' and 'completion' (TRL's formats), got keys ${Object.keys(r).join(', ') || 'none'}`,
    );
  }
  const kept = ids.slice(0, maxLength);
  return {
    inputIds: Int32Array.from(kept),
    labels: Int32Array.from(kept.map((id, i) => (i < promptLength ? IGNORE_INDEX : id))),
  };
}
