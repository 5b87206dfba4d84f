// The RWKV reproduction (examples/reproduce/rwkv.mts) in its --smoke
// configuration: it runs end to end and writes its results as JSON. Its
// agreement checks are numerical identities, so they are asserted here too;
// the timing result (flat for RWKV-4, growing for attention) needs the full
// run; see examples/reproduce/RESULTS.md.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runExample } from './run-example';

const dir = mkdtempSync(join(tmpdir(), 'lmk-repro-rwkv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Agreement {
  dtype: string;
  diff: number;
  scale: number;
  T: number;
}

describe('reproduce: rwkv (smoke)', () => {
  it('checks forward = step and KV-cache decoding = parallel attention, and times decoding by context length', () => {
    const out = join(dir, 'rwkv.json');
    const r = runExample('examples/reproduce/rwkv.mts', ['--smoke', '--out', out], { timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(readFileSync(out, 'utf8'));
    const { agreeT, attnCheckT, contexts } = result.config;
    const [f32, f64] = result.agreement.rwkv4 as Agreement[];
    const attention: Agreement = result.agreement.attention;
    expect([f32!.dtype, f64!.dtype, attention.dtype]).toEqual(['float32', 'float64', 'float32']);
    expect([f32!.T, f64!.T, attention.T]).toEqual([agreeT, agreeT, attnCheckT]);
    // Relative to the logits' size: float32 and float64 rounding over the sequence.
    expect(f32!.scale).toBeGreaterThan(0.1);
    expect(f32!.diff / f32!.scale).toBeLessThan(1e-5);
    expect(f64!.diff / f64!.scale).toBeLessThan(1e-13);
    expect(attention.diff / attention.scale).toBeLessThan(1e-5);
    expect(result.decoding.map((d: { context: number }) => d.context)).toEqual(contexts);
    for (const d of result.decoding) {
      for (const ms of [d.rwkv4MsPerToken, d.attentionMsPerToken]) expect(Number.isFinite(ms) && ms > 0).toBe(true);
    }
    expect(result.parameters.rwkv4).toBeGreaterThan(0);
    expect(result.parameters.attention).toBeGreaterThan(0);
  }, 40_000);
});
