// Batches of tokenized rows, and the one function that turns a batch into the method's loss.
import * as lmk from '../index';
import type { Tensor } from '../tensor';
import type { CausalLM } from '../hub/models';
import { IGNORE_INDEX } from '../data/tokenize';
import type { Example, PreferenceExample, TextExample } from './examples';
import type { FinetuneMethod } from './options';

/** Ids padded on the right to the longest row, labels shifted for next-token prediction. */
interface Sequences {
  ids: Tensor;
  labels: Tensor;
}

export type Batch =
  | { kind: 'text'; lines: number[]; tokens: number; text: Sequences }
  | { kind: 'preference'; lines: number[]; tokens: number; chosen: Sequences; rejected: Sequences };

/**
 * Rows → [B,T] int32 ids (padded with padId) and [B,T] labels where labels[b,t] is the row's
 * label at t + 1 (TRL's labels are aligned with the ids; the logits at t predict the next one),
 * IGNORE_INDEX in the padding and at the last position.
 */
function sequences(ids: Int32Array[], labels: Int32Array[], padId: number, device: lmk.Device): Sequences {
  const B = ids.length;
  const T = Math.max(...ids.map((r) => r.length));
  const flatIds = new Int32Array(B * T).fill(padId);
  const flatLabels = new Int32Array(B * T).fill(IGNORE_INDEX);
  ids.forEach((row, b) => {
    flatIds.set(row, b * T);
    flatLabels.set(labels[b]!.subarray(1), b * T);
  });
  return {
    ids: lmk.tensor(flatIds, { shape: [B, T], device }),
    labels: lmk.tensor(flatLabels, { shape: [B, T], device }),
  };
}

export function collate(rows: Example[], padId: number, device: lmk.Device): Batch {
  const lines = rows.map((r) => r.line);
  if (rows[0]!.kind === 'preference') {
    const p = rows as PreferenceExample[];
    const tokens = p.reduce((n, r) => n + r.chosenIds.length + r.rejectedIds.length, 0);
    return {
      kind: 'preference',
      lines,
      tokens,
      chosen: sequences(
        p.map((r) => r.chosenIds),
        p.map((r) => r.chosenLabels),
        padId,
        device,
      ),
      rejected: sequences(
        p.map((r) => r.rejectedIds),
        p.map((r) => r.rejectedLabels),
        padId,
        device,
      ),
    };
  }
  const t = rows as TextExample[];
  return {
    kind: 'text',
    lines,
    tokens: t.reduce((n, r) => n + r.inputIds.length, 0),
    text: sequences(
      t.map((r) => r.inputIds),
      t.map((r) => r.labels),
      padId,
      device,
    ),
  };
}

export interface MethodLoss {
  /** The scalar the optimizer minimises (autograd). */
  loss: Tensor;
  /** 0-d tensors reported on the evaluation split (ORPO: TRL's metrics). */
  metrics: Record<string, Tensor>;
}

/** What the goldfish method drops: the library defaults (k = 4, hash over h = 13 tokens; docs/api.md). */
const GOLDFISH = { k: 4, contextWidth: 13 } as const;

/**
 * The loss of one batch for a method: sft = cross-entropy, goldfish = goldfish loss, orpo = ORPO
 * (SFT on the chosen answers + λ·odds-ratio term). The only place where a method becomes a
 * loss. By default straight from the hidden states (ops.linearCrossEntropy / linearOrpo on
 * model.hiddenStates and model.head: no logits tensor); from the logits (model.forward and
 * ops.crossEntropy / goldfishLoss / orpo) when the head carries LoRA adapters (nn.lossHead).
 */
export function methodLoss(
  method: FinetuneMethod,
  model: CausalLM,
  batch: Batch,
  opts: { lambda: number },
): MethodLoss {
  const head = lmk.nn.lossHead(model);
  if (method === 'orpo') {
    if (batch.kind !== 'preference') throw new TypeError('finetune: --method orpo needs preference rows');
    const common = {
      chosenLabels: batch.chosen.labels,
      rejectedLabels: batch.rejected.labels,
      lambda: opts.lambda,
      ignoreIndex: IGNORE_INDEX,
    };
    const r = head
      ? lmk.ops.linearOrpo({
          chosenHidden: model.hiddenStates(batch.chosen.ids),
          rejectedHidden: model.hiddenStates(batch.rejected.ids),
          ...head,
          ...common,
        })
      : lmk.ops.orpo({
          chosenLogits: model.forward(batch.chosen.ids),
          rejectedLogits: model.forward(batch.rejected.ids),
          ...common,
        });
    return { loss: r.loss, metrics: { loss: r.loss, nllLoss: r.nllLoss, orLoss: r.orLoss, ...r.metrics } };
  }
  if (batch.kind !== 'text') throw new TypeError(`finetune: --method ${method} needs text rows`);
  const labels = batch.text.labels;
  if (method === 'goldfish') {
    if (head) {
      const hidden = model.hiddenStates(batch.text.ids);
      const r = lmk.ops.linearCrossEntropy({ hidden, ...head, labels, ignoreIndex: IGNORE_INDEX, goldfish: GOLDFISH });
      return { loss: r.loss, metrics: { loss: r.loss, crossEntropy: r.lossAllTokens! } };
    }
    const logits = model.forward(batch.text.ids);
    const r = lmk.ops.goldfishLoss({ logits, labels, ignoreIndex: IGNORE_INDEX, ...GOLDFISH });
    return { loss: r.loss, metrics: { loss: r.loss, crossEntropy: r.lossAllTokens } };
  }
  const r = head
    ? lmk.ops.linearCrossEntropy({
        hidden: model.hiddenStates(batch.text.ids),
        ...head,
        labels,
        ignoreIndex: IGNORE_INDEX,
      })
    : lmk.ops.crossEntropy({ logits: model.forward(batch.text.ids), labels, ignoreIndex: IGNORE_INDEX });
  return { loss: r.loss, metrics: { loss: r.loss, crossEntropy: r.loss } };
}
