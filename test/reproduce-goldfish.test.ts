// The goldfish reproduction (examples/reproduce/goldfish.mts) in its --smoke
// configuration: it runs end to end and writes its results as JSON. The
// scientific result (plain cross-entropy memorises, goldfish does not) needs
// the full run; see examples/reproduce/RESULTS.md.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runExample } from './run-example';

const dir = mkdtempSync(join(tmpdir(), 'lmk-repro-goldfish-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface RunResult {
  exact: number;
  lcs: number;
  perDoc: { same: boolean; r: number; text: string }[];
  val: number;
  trainAll: number;
  losses: number[];
  params: number;
}

describe('reproduce: goldfish (smoke)', () => {
  it('trains the three models and measures memorisation and validation loss', () => {
    const out = join(dir, 'goldfish.json');
    const r = runExample('examples/reproduce/goldfish.mts', ['--smoke', '--out', out], { timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(readFileSync(out, 'utf8'));
    const { docs, epochs, batch, suffix } = result.config;
    expect(docs).toBe(6);
    // k = 4: about a quarter of the document labels are dropped.
    expect(result.dropped).toBeGreaterThan(0.1);
    expect(result.dropped).toBeLessThan(0.4);
    expect(Object.keys(result.results)).toEqual(['ce', 'goldfish', 'control']);
    for (const run of Object.values(result.results) as RunResult[]) {
      expect(run.losses).toHaveLength(epochs * Math.ceil(docs / batch));
      expect(run.losses.every(Number.isFinite)).toBe(true);
      expect(Number.isInteger(run.exact) && run.exact >= 0 && run.exact <= docs).toBe(true);
      expect(run.perDoc).toHaveLength(docs);
      expect(run.perDoc.filter((d) => d.same)).toHaveLength(run.exact);
      for (const d of run.perDoc) {
        expect(d.r).toBeGreaterThanOrEqual(0);
        expect(d.r).toBeLessThanOrEqual(1);
        expect(Buffer.byteLength(d.text)).toBeGreaterThanOrEqual(suffix); // invalid UTF-8 becomes 3-byte U+FFFD
      }
      expect(run.lcs).toBeCloseTo(run.perDoc.reduce((s, d) => s + d.r, 0) / docs, 12);
      // Barely trained: near ln 256 = 5.55 nats/byte, and finite.
      for (const ce of [run.val, run.trainAll]) {
        expect(ce).toBeGreaterThan(3);
        expect(ce).toBeLessThan(7);
      }
    }
    const { ce, goldfish, control } = result.results;
    expect(ce.params).toBe(goldfish.params);
    expect(ce.params).toBe(control.params);
  }, 40_000);

  it('--help lists the options', () => {
    const r = runExample('examples/reproduce/goldfish.mts', ['--help'], { timeout: 20_000 });
    expect(r.status).toBe(0);
    for (const flag of ['--epochs', '--out', '--smoke']) expect(r.stdout).toContain(flag);
  });
});
