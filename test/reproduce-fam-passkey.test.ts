// examples/reproduce/fam-passkey.mts in its --smoke configuration: the FAM
// model and both BSWA variants train for a few steps and are scored on
// passkey retrieval, and the results are written as JSON. Not the scientific
// result (see examples/reproduce/RESULTS.md for the full run).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runExample } from './run-example';

const dir = mkdtempSync(join(tmpdir(), 'lmk-repro-fam-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('reproduction: FAM passkey retrieval (--smoke)', () => {
  it('trains FAM and both BSWA models and scores them at every evaluation length', () => {
    const out = join(dir, 'fam.json');
    const r = runExample('examples/reproduce/fam-passkey.mts', ['--smoke', '--out', out], { timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const result = JSON.parse(readFileSync(out, 'utf8'));
    expect(result.results.map((x: { key: string }) => x.key)).toEqual(['fam', 'bswa0', 'bswa1']);
    expect(result.results.map((x: { name: string }) => x.name)).toEqual([
      `FAM (m=1, F=${result.cfg.F})`,
      'BSWA m=0',
      'BSWA m=1',
    ]);
    for (const arm of result.results) {
      expect(arm.losses).toHaveLength(result.cfg.steps);
      expect(arm.losses.every(Number.isFinite)).toBe(true);
      expect(Object.keys(arm.acc).map(Number)).toEqual(result.cfg.evalLengths);
      for (const acc of Object.values(arm.acc) as { exact: number; digit: number }[]) {
        expect(acc.exact).toBeGreaterThanOrEqual(0);
        expect(acc.exact).toBeLessThanOrEqual(acc.digit + 1e-12);
        expect(acc.digit).toBeLessThanOrEqual(1);
      }
    }
    // The FAM model has the extra learned initial FAM (F × d per layer); the BSWA ones do not train it.
    const [fam, bswa0, bswa1] = result.results;
    expect(fam.params).toBeGreaterThan(bswa0.params);
    expect(bswa0.params).toBe(bswa1.params);
  });
});
