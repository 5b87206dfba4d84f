// examples/reproduce/fam-passkey.mjs in its --smoke configuration: the FAM
// model and both BSWA variants train for a few steps and are scored on
// passkey retrieval, and the accuracy table is printed. Not the scientific
// result (see examples/reproduce/RESULTS.md for the full run).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'lmk-repro-fam-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('reproduction: FAM passkey retrieval (--smoke)', () => {
  it('runs end to end and prints its table', () => {
    const out = join(dir, 'fam.json');
    const r = spawnSync(process.execPath, ['examples/reproduce/fam-passkey.mjs', '--smoke', '--out', out], {
      cwd: root,
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, LMK_DEVICE: 'cpu' },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\| model \| params \| len 32 \| len 64 \| train s \|/);
    for (const name of ['FAM \\(m=1, F=\\d+\\)', 'BSWA m=0', 'BSWA m=1']) {
      expect(r.stdout).toMatch(new RegExp(`\\| ${name} \\| \\d+ \\| \\d\\.\\d\\d \\(\\d\\.\\d\\d\\)`));
    }
    const result = JSON.parse(readFileSync(out, 'utf8'));
    expect(result.results.map((x: { key: string }) => x.key)).toEqual(['fam', 'bswa0', 'bswa1']);
    for (const arm of result.results) {
      expect(arm.losses.every(Number.isFinite)).toBe(true);
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
