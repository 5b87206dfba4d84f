// examples/reproduce/orpo.mjs in its --smoke configuration: it runs end to
// end (base fine-tuning, SFT and ORPO arms, held-out evaluation) and prints
// its tables with finite metrics. Not the scientific result (see
// examples/reproduce/RESULTS.md for the full run).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'lmk-repro-orpo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('reproduction: ORPO (--smoke)', () => {
  it('runs end to end and prints its tables', () => {
    const out = join(dir, 'orpo.json');
    const r = spawnSync(process.execPath, ['examples/reproduce/orpo.mjs', '--smoke', '--out', out], {
      cwd: root,
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, LMK_DEVICE: 'cpu' },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('| model | rewards accuracy | rewards margin | log-odds ratio |');
    expect(r.stdout).toMatch(/\| base \(before alignment\) \|/);
    expect(r.stdout).toMatch(/\| SFT on chosen \(\d+ steps\) \|/);
    expect(r.stdout).toMatch(/\| ORPO λ=0\.1 \(\d+ steps\) \|/);
    expect(r.stdout).toContain('| alignment steps | SFT: accuracy | ORPO: accuracy |');
    const result = JSON.parse(readFileSync(out, 'utf8'));
    expect(result.rows).toHaveLength(3);
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
      expect(row.logOddsRatio).toBeLessThanOrEqual(0);
    }
  });
});
