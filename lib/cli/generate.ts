// `npx lmkernels generate`: sample a continuation of a prompt from a Hugging Face model directory
// (or a PEFT adapter directory over its base model), printed as it comes.
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as lmk from '../index';
import { UsageError, numberFlag, parse, requiredFlag } from './args';

export const GENERATE_USAGE = `usage: lmkernels generate --model DIR --prompt TEXT [--max-new-tokens N] [--temperature X]
                          [--top-p P] [--top-k K] [--seed S] [--device D] [--chat]

  --model DIR          a Hugging Face model directory, or a PEFT adapter directory (adapter_config.json)
                       whose base_model_name_or_path is a model directory
  --prompt TEXT        the text to continue (encoded with the tokenizer's special tokens, e.g. BOS)
  --max-new-tokens N   at most this many new tokens (default 128); generation also stops at EOS
  --temperature X      0 = greedy (default 1)
  --top-p P            nucleus sampling threshold (default 1: off)
  --top-k K            keep the K most likely tokens (default 0: off)
  --seed S             sampling seed (default 0)
  --device D           cpu, cuda or cuda:N (default: cuda:0 when usable, else cpu)
  --chat               send the prompt as a user message through the tokenizer's chat template`;

const FLAGS = {
  model: { type: 'string' },
  prompt: { type: 'string' },
  'max-new-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  'top-k': { type: 'string' },
  seed: { type: 'string' },
  device: { type: 'string' },
  chat: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The model of a directory: a model, or a PEFT adapter applied to the base model it names. */
async function loadModelOrAdapter(dir: string, device: lmk.DeviceSpec | undefined) {
  const opts = device === undefined ? {} : { device };
  const adapterConfig = path.join(dir, 'adapter_config.json');
  if (existsSync(path.join(dir, 'config.json')) || !existsSync(adapterConfig)) {
    return { model: await lmk.hub.loadModel(dir, opts), tokenizerDir: dir };
  }
  const base = (JSON.parse(readFileSync(adapterConfig, 'utf8')) as { base_model_name_or_path?: unknown })
    .base_model_name_or_path;
  if (typeof base !== 'string' || !existsSync(path.join(base, 'config.json'))) {
    throw new UsageError(
      `lmkernels generate: ${adapterConfig} names base model ${JSON.stringify(base)}, which is not a local model directory`,
    );
  }
  const model = await lmk.hub.loadModel(base, opts);
  await lmk.hub.loadAdapter(model, dir);
  return { model, tokenizerDir: existsSync(path.join(dir, 'tokenizer.json')) ? dir : base };
}

/** Text that is safe to print: a trailing replacement character may be half of a UTF-8 sequence. */
function stablePrefix(text: string): string {
  let end = text.length;
  while (end > 0 && text[end - 1] === '\uFFFD') end--;
  return text.slice(0, end);
}

export async function generate(argv: string[]): Promise<number> {
  const cmd = 'generate';
  const v = parse(cmd, argv, FLAGS);
  if (v.help) {
    console.log(GENERATE_USAGE);
    return 0;
  }
  const dir = requiredFlag(cmd, 'model', v.model);
  const prompt = requiredFlag(cmd, 'prompt', v.prompt);
  const maxNewTokens = numberFlag(cmd, 'max-new-tokens', v['max-new-tokens'], 128);
  const temperature = numberFlag(cmd, 'temperature', v.temperature, 1);
  const topP = numberFlag(cmd, 'top-p', v['top-p'], 1);
  const topK = numberFlag(cmd, 'top-k', v['top-k'], 0);
  const seed = numberFlag(cmd, 'seed', v.seed, 0);
  const { model, tokenizerDir } = await loadModelOrAdapter(dir, v.device as lmk.DeviceSpec | undefined);
  try {
    const tokenizer = await lmk.hub.loadTokenizer(tokenizerDir);
    const text = v.chat
      ? tokenizer.applyChatTemplate([{ role: 'user', content: prompt }], { addGenerationPrompt: true })
      : prompt;
    const inputIds = tokenizer.encode(text, { addSpecialTokens: !v.chat });
    process.stdout.write(prompt);
    const ids: number[] = [];
    let printed = 0;
    const started = performance.now();
    for await (const id of lmk.generate(model, { inputIds, maxNewTokens, temperature, topP, topK, seed })) {
      ids.push(id);
      const decoded = stablePrefix(tokenizer.decode(ids, { skipSpecialTokens: true }));
      if (decoded.length > printed) {
        process.stdout.write(decoded.slice(printed));
        printed = decoded.length;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(tokenizer.decode(ids, { skipSpecialTokens: true }).slice(printed) + '\n');
    process.stderr.write(
      `generate: ${ids.length} tokens in ${seconds.toFixed(2)} s (${(ids.length / seconds).toFixed(1)} tokens/s)\n`,
    );
    return 0;
  } finally {
    model.dispose();
  }
}
