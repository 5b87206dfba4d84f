// examples/reproduce/orpo.mts in its --smoke configuration: it runs end to
// end (base fine-tuning, SFT and ORPO arms, held-out evaluation) and writes
// its results as JSON with finite metrics. Not the scientific result (see
// examples/reproduce/RESULTS.md for the full run).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runExample } from './run-example';

const dir = mkdtempSync(join(tmpdir(), 'lmk-repro-orpo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('reproduction: ORPO (--smoke)', () => {
  it('runs end to end and writes finite held-out metrics for the base, SFT and ORPO models', () => {
    const out = join(dir, 'orpo.json');
    const r = runExample('examples/reproduce/orpo.mts', ['--smoke', '--out', out], { timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const result = JSON.parse(readFileSync(out, 'utf8'));
    const steps = result.cfg.alignSteps;
    expect(result.lambda).toBe(0.1);
    expect(result.rows.map((row: { name: string }) => row.name)).toEqual([
      'base (before alignment)',
      `SFT on chosen (${steps} steps)`,
      `ORPO λ=0.1 (${steps} steps)`,
    ]);
    for (const row of result.rows) {
      for (const key of [
        'rewardsAccuracy',
        'rewardsMargin',
        'logOddsRatio',
        'logOddsChosen',
        'chosenLogp',
        'rejectedLogp',
      ]) {
        expect(Number.isFinite(row[key]), `${row.name} ${key}`).toBe(true);
      }
      expect(row.rewardsAccuracy).toBeGreaterThanOrEqual(0);
      expect(row.rewardsAccuracy).toBeLessThanOrEqual(1);
      expect(row.logOddsRatio).toBeLessThanOrEqual(0); // mean log σ(·)
      // Mean log p per byte of a response, and the style of greedy completions.
      expect(row.chosenLogp).toBeLessThan(0);
      expect(row.rejectedLogp).toBeLessThan(0);
      expect(row.greedyChosenStyle + row.greedyRejectedStyle).toBeLessThanOrEqual(1);
      expect(row.greedyChosenStyle).toBeGreaterThanOrEqual(0);
      expect(row.greedyRejectedStyle).toBeGreaterThanOrEqual(0);
      expect(row.samples.length).toBeGreaterThan(0);
    }
    for (const arm of ['base', 'sft', 'orpo']) expect(result.times[arm]).toBeGreaterThan(0);
  });
});
