// The goldfish reproduction (examples/reproduce/goldfish.mjs) in its --smoke
// configuration: it runs end to end and prints its result table. The
// scientific result (plain cross-entropy memorises, goldfish does not) needs
// the full run; see examples/reproduce/RESULTS.md.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('reproduce: goldfish (smoke)', () => {
  it('trains the three models, measures memorisation and validation loss, and prints the table', () => {
    const r = spawnSync(process.execPath, ['examples/reproduce/goldfish.mjs', '--smoke'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, LMK_DEVICE: 'cpu' },
    });
    if (r.status !== 0) throw new Error(`goldfish.mjs --smoke exited with ${r.status}:\n${r.stdout}\n${r.stderr}`);
    const out = r.stdout;
    expect(out).toContain('| loss | exact-match suffixes | mean LCS ratio |');
    const names = [
      '| cross-entropy |',
      '| goldfish (k 4, h 13, hash) |',
      '| control: cross-entropy, documents never seen |',
    ];
    const rows = out.split('\n').filter((l) => names.some((n) => l.startsWith(n)));
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      const cells = row
        .split('|')
        .slice(2, -1)
        .map((c) => c.trim());
      expect(cells[0]).toMatch(/^\d+ \/ 6$/);
      for (const c of cells.slice(1)) expect(Number.isFinite(Number(c))).toBe(true);
    }
    expect(out).toMatch(/drops \d+\.\d% of the \d+ training labels/);
  }, 40_000);

  it('--help lists the options', () => {
    const r = spawnSync(process.execPath, ['examples/reproduce/goldfish.mjs', '--help'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--epochs');
    expect(r.stdout).toContain('--smoke');
  });
});
