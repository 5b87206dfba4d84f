#!/usr/bin/env node
// Writes examples/data/antonym-pairs.jsonl: preference pairs in TRL's format ({prompt, chosen,
// rejected}) that a small model can learn from scratch in a few minutes on a CPU. Each prompt asks
// for the opposite of a word; the chosen answer is its antonym, the rejected one another word of
// the list, so at the start a model has no reason to prefer either (rewards accuracy near 0.5) and
// must learn the 32 word pairs to tell them apart. Written for this project; deterministic.
//
// Usage: node scripts/make-preference-pairs.mjs
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const PAIRS = [
  ['hot', 'cold'],
  ['big', 'small'],
  ['fast', 'slow'],
  ['happy', 'sad'],
  ['light', 'dark'],
  ['up', 'down'],
  ['early', 'late'],
  ['full', 'empty'],
  ['hard', 'soft'],
  ['high', 'low'],
  ['old', 'young'],
  ['open', 'closed'],
  ['rich', 'poor'],
  ['strong', 'weak'],
  ['wet', 'dry'],
  ['loud', 'quiet'],
  ['near', 'far'],
  ['thick', 'thin'],
  ['sweet', 'sour'],
  ['day', 'night'],
  ['win', 'lose'],
  ['push', 'pull'],
  ['buy', 'sell'],
  ['first', 'last'],
  ['inside', 'outside'],
  ['above', 'below'],
  ['clean', 'dirty'],
  ['easy', 'difficult'],
  ['true', 'false'],
  ['begin', 'end'],
  ['left', 'right'],
  ['wide', 'narrow'],
];
const TEMPLATES = [
  (w) => `Q: What is the opposite of ${w}?\nA:`,
  (w) => `Q: Give the antonym of "${w}".\nA:`,
  (w) => `Q: The opposite of ${w} is?\nA:`,
];

// A small linear congruential generator: the file is the same on every run.
let state = 12345;
const next = (n) => {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return (state >>> 8) % n;
};

const rows = [];
for (const [a, b] of PAIRS) {
  for (const [word, answer] of [
    [a, b],
    [b, a],
  ]) {
    for (const template of TEMPLATES) {
      for (let k = 0; k < 2; k++) {
        let wrong;
        do {
          const [x, y] = PAIRS[next(PAIRS.length)];
          wrong = next(2) ? x : y;
        } while (wrong === answer || wrong === word);
        rows.push({ prompt: template(word), chosen: ` ${answer}.`, rejected: ` ${wrong}.` });
      }
    }
  }
}
const out = fileURLToPath(new URL('../examples/data/antonym-pairs.jsonl', import.meta.url));
writeFileSync(out, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
console.log(`wrote ${rows.length} pairs to ${out}`);
