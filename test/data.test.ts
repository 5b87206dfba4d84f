// data.readJsonl, and TRL's tokenization of preference and SFT rows: against TRL's own trainers
// (test/fixtures/tokenizers/trl-cases.json, made by scripts/make-tokenizer-fixtures.py with TRL 1.13)
// and, for the prompt truncation that TRL 1.13's ORPOTrainer no longer has (maxPromptLength), against
// examples worked by hand from TRL's earlier ORPOTrainer.tokenize_row, on a byte tokenizer whose ids
// are the UTF-8 bytes (BOS 256, EOS 257).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';

const root = join(__dirname, 'fixtures', 'tokenizers');
const work = mkdtempSync(join(tmpdir(), 'lmk-data-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function collect(path: string) {
  const rows = [];
  for await (const row of lmk.data.readJsonl(path)) rows.push(row);
  return rows;
}

describe('data.readJsonl', () => {
  it('streams one object per line and skips blank lines', async () => {
    const path = join(work, 'ok.jsonl');
    writeFileSync(path, '{"a": 1}\n\n  \n{"b": "é 🙂", "c": [1, {"d": null}]}\r\n{"e": true}');
    expect(await collect(path)).toEqual([{ a: 1 }, { b: 'é 🙂', c: [1, { d: null }] }, { e: true }]);
  });

  it('names the file and the 1-based line of a malformed line', async () => {
    const path = join(work, 'data.jsonl');
    writeFileSync(path, '{"a": 1}\n{"a": 2}\n\n{"a": 3}\n{"a": 4}\n{"a": 5}\n{"a": 6,}\n{"a": 8}\n');
    await expect(collect(path)).rejects.toThrow(/data\.jsonl:7: malformed JSON/);
    const notObject = join(work, 'array.jsonl');
    writeFileSync(notObject, '{"a": 1}\n[1, 2]\n');
    await expect(collect(notObject)).rejects.toThrow(/array\.jsonl:2: expected a JSON object/);
  });

  it('rejects a missing file by name and a non-string path at once', async () => {
    await expect(collect(join(work, 'missing.jsonl'))).rejects.toThrow(/data\.readJsonl: cannot read .*missing\.jsonl/);
    expect(() => lmk.data.readJsonl(3 as unknown as string)).toThrow(TypeError);
  });
});

interface PreferenceCase {
  row: Record<string, unknown>;
  chosenIds: number[];
  chosenLabels: number[];
  rejectedIds: number[];
  rejectedLabels: number[];
}
interface TextCase {
  row: Record<string, unknown>;
  maxLength: number;
  inputIds?: number[];
  labels?: number[];
  droppedByTrl?: boolean;
}
const trlCases = JSON.parse(readFileSync(join(root, 'trl-cases.json'), 'utf8')) as {
  tokenizer: string;
  preference: PreferenceCase[];
  text: TextCase[];
}[];

describe.each(trlCases.map((c) => [c.tokenizer, c] as const))('TRL tokenization, tokenizer %s', (name, cases) => {
  it("tokenizes preference rows (strings, conversations, implicit prompt) as TRL's ORPOTrainer", async () => {
    const tok = await lmk.hub.loadTokenizer(join(root, name));
    for (const c of cases.preference) {
      const got = lmk.data.tokenizePreference(tok, c.row, { maxLength: 512 });
      expect({ row: c.row, ...mapArrays(got) }).toEqual({
        row: c.row,
        chosenIds: c.chosenIds,
        chosenLabels: c.chosenLabels,
        rejectedIds: c.rejectedIds,
        rejectedLabels: c.rejectedLabels,
      });
    }
  });

  it("tokenizes text, messages and prompt-completion rows as TRL's SFTTrainer (keep_start truncation)", async () => {
    const tok = await lmk.hub.loadTokenizer(join(root, name));
    for (const c of cases.text) {
      const got = lmk.data.tokenizeText(tok, c.row, { maxLength: c.maxLength });
      if (c.droppedByTrl) {
        // TRL drops a row left with no supervised token; the finetune command skips it the same way.
        expect(Array.from(got.labels).every((l) => l === lmk.data.IGNORE_INDEX)).toBe(true);
        expect(got.inputIds.length).toBe(c.maxLength);
        continue;
      }
      expect({ row: c.row, maxLength: c.maxLength, ...mapArrays(got) }).toEqual({
        row: c.row,
        maxLength: c.maxLength,
        inputIds: c.inputIds,
        labels: c.labels,
      });
    }
  });
});

function mapArrays(o: object): Record<string, number[]> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Array.from(v as Int32Array)]));
}

/** The 256-byte fixture with <s> = 256 and </s> = 257 added, so every id below is worked out by hand. */
async function bytesWithSpecials() {
  const dir = join(work, 'bytes-specials');
  mkdirSync(dir, { recursive: true });
  const json = JSON.parse(readFileSync(join(root, 'bytes', 'tokenizer.json'), 'utf8'));
  json.added_tokens = ['<s>', '</s>'].map((content, i) => ({
    id: 256 + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }));
  return lmk.hub.loadTokenizer(dir);
}

const bytes = (s: string) => Array.from(Buffer.from(s, 'utf8'));
const ignored = (n: number) => new Array<number>(n).fill(-100);

describe('data.tokenizePreference truncation (worked by hand from TRL tokenize_row)', () => {
  it('keeps the end of a long prompt (dropping the BOS with it) and leaves answers that fit', async () => {
    const tok = await bytesWithSpecials();
    // prompt [BOS a b c d e f] = 7 ids, answers "XYZ"+EOS = 4 and "Q"+EOS = 2: 7 + 4 > 8, so the
    // prompt keeps its last maxPromptLength = 4 ids; 4 + 4 = 8 fits, the answers stay whole.
    const got = lmk.data.tokenizePreference(
      tok,
      { prompt: 'abcdef', chosen: 'XYZ', rejected: 'Q' },
      { maxLength: 8, maxPromptLength: 4 },
    );
    expect(mapArrays(got)).toEqual({
      chosenIds: [...bytes('cdef'), ...bytes('XYZ'), 257],
      chosenLabels: [...ignored(4), ...bytes('XYZ'), 257],
      rejectedIds: [...bytes('cdef'), ...bytes('Q'), 257],
      rejectedLabels: [...ignored(4), ...bytes('Q'), 257],
    });
  });

  it('then cuts both answers to maxLength - maxPromptLength (the EOS too)', async () => {
    const tok = await bytesWithSpecials();
    // answers "VWXYZ"+EOS = 6 and "Q"+EOS = 2; prompt 7 + 6 > 6 → last 2 ids "ef"; 2 + 6 > 6 → the
    // answers keep their first 6 - 2 = 4 ids.
    const got = lmk.data.tokenizePreference(
      tok,
      { prompt: 'abcdef', chosen: 'VWXYZ', rejected: 'Q' },
      { maxLength: 6, maxPromptLength: 2 },
    );
    expect(mapArrays(got)).toEqual({
      chosenIds: [...bytes('ef'), ...bytes('VWXY')],
      chosenLabels: [...ignored(2), ...bytes('VWXY')],
      rejectedIds: [...bytes('ef'), ...bytes('Q'), 257],
      rejectedLabels: [...ignored(2), ...bytes('Q'), 257],
    });
  });

  it('adds BOS and EOS only when missing, and defaults maxPromptLength to maxLength / 2', async () => {
    const tok = await bytesWithSpecials();
    const got = lmk.data.tokenizePreference(
      tok,
      { prompt: '<s>hi', chosen: 'ok</s>', rejected: 'no' },
      { maxLength: 64 },
    );
    expect(mapArrays(got).chosenIds).toEqual([256, ...bytes('hi'), ...bytes('ok'), 257]);
    expect(mapArrays(got).rejectedIds).toEqual([256, ...bytes('hi'), ...bytes('no'), 257]);
    // maxLength 10 → maxPromptLength 5: prompt [BOS 0123456789] = 11 → "56789".
    const cut = lmk.data.tokenizePreference(
      tok,
      { prompt: '0123456789', chosen: 'a', rejected: 'b' },
      { maxLength: 10 },
    );
    expect(mapArrays(cut).chosenIds).toEqual([...bytes('56789'), ...bytes('a'), 257]);
  });

  it("extracts an implicit string prompt as TRL's extract_prompt (the space goes to the answers)", async () => {
    const tok = await lmk.hub.loadTokenizer(join(root, 'bytes')); // no BOS, no EOS: nothing added
    const got = lmk.data.tokenizePreference(
      tok,
      { chosen: 'Q: hi A: yes', rejected: 'Q: hi A: no' },
      { maxLength: 64 },
    );
    expect(mapArrays(got)).toEqual({
      chosenIds: bytes('Q: hi A: yes'),
      chosenLabels: [...ignored(8), ...bytes(' yes')],
      rejectedIds: bytes('Q: hi A: no'),
      rejectedLabels: [...ignored(8), ...bytes(' no')],
    });
  });

  it('reports rows and options it cannot use', async () => {
    const tok = await lmk.hub.loadTokenizer(join(root, 'llama2'));
    expect(() => lmk.data.tokenizePreference(tok, { prompt: 'x', chosen: 'y' }, { maxLength: 8 })).toThrow(
      /data\.tokenizePreference: row must have 'chosen' and 'rejected'/,
    );
    expect(() =>
      lmk.data.tokenizePreference(
        tok,
        { prompt: 'x', chosen: 'y', rejected: [{ role: 'assistant', content: 'z' }] },
        { maxLength: 8 },
      ),
    ).toThrow(TypeError);
    expect(() =>
      lmk.data.tokenizePreference(
        tok,
        { prompt: 'x', chosen: 'y', rejected: 'z' },
        { maxLength: 8, maxPromptLength: 8 },
      ),
    ).toThrow(/maxPromptLength must be an integer in \[1, 7\]/);
    expect(() =>
      lmk.data.tokenizePreference(tok, { prompt: 'x', chosen: 'y', rejected: 'z' }, undefined as never),
    ).toThrow(TypeError);
    expect(() => lmk.data.tokenizeText(tok, { chosen: 'y' }, { maxLength: 8 })).toThrow(
      /data\.tokenizeText: row must have 'text', 'messages', or 'prompt' and 'completion'/,
    );
    expect(() => lmk.data.tokenizeText(tok, { text: 'y' }, { maxLength: 0 })).toThrow(RangeError);
  });
});
