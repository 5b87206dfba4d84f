// hub.loadTokenizer against Python: ids from Python `tokenizers`, decoded text and chat templates
// from transformers, for the fixture tokenizers made by scripts/make-tokenizer-fixtures.py.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';

const root = join(__dirname, 'fixtures', 'tokenizers');

interface TextCase {
  text: string;
  ids: number[];
  idsWithoutSpecialTokens: number[];
  decoded: string;
  decodedSkippingSpecialTokens: string;
}
interface ChatCase {
  messages: { role: string; content: string }[];
  addGenerationPrompt: boolean;
  text?: string;
  error?: string;
}
interface TokenizerCases {
  vocabSize: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
  texts: TextCase[];
  chats: ChatCase[];
}
const cases = JSON.parse(readFileSync(join(root, 'cases.json'), 'utf8')) as Record<string, TokenizerCases>;

const work = mkdtempSync(join(tmpdir(), 'lmk-tok-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.each(Object.keys(cases))('tokenizer %s', (name) => {
  const expected = cases[name]!;

  it('has the vocabulary size and special token ids transformers reports', async () => {
    const tok = await lmk.hub.loadTokenizer(join(root, name));
    expect(tok.vocabSize).toBe(expected.vocabSize);
    expect(tok.bosTokenId).toBe(expected.bosTokenId ?? undefined);
    expect(tok.eosTokenId).toBe(expected.eosTokenId ?? undefined);
    expect(tok.padTokenId).toBe(expected.padTokenId ?? undefined);
  });

  it('encodes every fixture text to the ids of Python tokenizers', async () => {
    const tok = await lmk.hub.loadTokenizer(join(root, name));
    for (const c of expected.texts) {
      const ids = tok.encode(c.text);
      expect(ids).toBeInstanceOf(Int32Array);
      expect({ text: c.text, ids: Array.from(ids) }).toEqual({ text: c.text, ids: c.ids });
      expect({ text: c.text, ids: Array.from(tok.encode(c.text, { addSpecialTokens: false })) }).toEqual({
        text: c.text,
        ids: c.idsWithoutSpecialTokens,
      });
    }
  });

  it("decodes as transformers' decode, with and without special tokens", async () => {
    const tok = await lmk.hub.loadTokenizer(join(root, name));
    for (const c of expected.texts) {
      expect(tok.decode(c.ids)).toBe(c.decoded);
      expect(tok.decode(Int32Array.from(c.ids), { skipSpecialTokens: true })).toBe(c.decodedSkippingSpecialTokens);
    }
    expect(tok.decode([])).toBe('');
  });
});

const withTemplates = Object.keys(cases).filter((name) => cases[name]!.chats.length > 0);
describe.each(withTemplates)('chat template of %s', (name) => {
  it("renders as transformers' apply_chat_template (raise_exception included)", async () => {
    const tok = await lmk.hub.loadTokenizer(join(root, name));
    for (const c of cases[name]!.chats) {
      const render = () => tok.applyChatTemplate(c.messages, { addGenerationPrompt: c.addGenerationPrompt });
      if (c.error !== undefined) expect(render).toThrow(c.error);
      else expect(render()).toBe(c.text);
    }
  });
});

describe('hub.loadTokenizer', () => {
  it('gives the UTF-8 bytes as ids with the byte-level fixture (the demo models’ vocabulary)', async () => {
    const tok = await lmk.hub.loadTokenizer(join(root, 'bytes'));
    const text = 'bytes é 🙂\u0000\n\t\u00ff';
    expect(Array.from(tok.encode(text))).toEqual(Array.from(Buffer.from(text, 'utf8')));
    expect(tok.decode(Buffer.from(text, 'utf8'))).toBe(text);
    expect(tok.vocabSize).toBe(256);
  });

  it('reads a chat_template.jinja file in preference to tokenizer_config.json', async () => {
    const dir = join(work, 'template-file');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    copyFileSync(join(root, 'llama2', 'tokenizer.json'), join(dir, 'tokenizer.json'));
    copyFileSync(join(root, 'llama2', 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    writeFileSync(join(dir, 'chat_template.jinja'), '{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}');
    const tok = await lmk.hub.loadTokenizer(dir);
    expect(tok.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('<user>x');
  });

  it('reports a missing directory, missing template and bad arguments clearly', async () => {
    await expect(lmk.hub.loadTokenizer(join(work, 'nowhere'))).rejects.toThrow(
      /hub\.loadTokenizer: .*nowhere.*tokenizer\.json not found/,
    );
    const bytes = await lmk.hub.loadTokenizer(join(root, 'bytes'));
    expect(() => bytes.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(/has no chat template/);
    expect(() => bytes.encode(3 as unknown as string)).toThrow(TypeError);
    expect(() => bytes.encode('x', { addSpecialToken: true } as never)).toThrow(/unknown option 'addSpecialToken'/);
    expect(() => bytes.decode([1, 256])).toThrow(/Tokenizer\.decode: ids\[1\] must be an integer in \[0, 256\)/);
    expect(() => bytes.decode([1.5])).toThrow(RangeError);
    const llama = await lmk.hub.loadTokenizer(join(root, 'llama2'));
    expect(() => llama.applyChatTemplate([{ role: 'user' }] as never)).toThrow(/messages\[0\] must be/);
  });
});
