// The RWKV reproduction (examples/reproduce/rwkv.mjs) in its --smoke
// configuration: it runs end to end and prints both tables. Its agreement
// checks are numerical identities, so they are asserted here too; the
// timing result (flat for RWKV-4, growing for attention) needs the full run;
// see examples/reproduce/RESULTS.md.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('reproduce: rwkv (smoke)', () => {
  it('checks forward = step, times decoding by context length, and prints the tables', () => {
    const r = spawnSync(process.execPath, ['examples/reproduce/rwkv.mjs', '--smoke'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, LMK_DEVICE: 'cpu' },
    });
    if (r.status !== 0) throw new Error(`rwkv.mjs --smoke exited with ${r.status}:\n${r.stdout}\n${r.stderr}`);
    const out = r.stdout;
    const diff = (prefix: string) => {
      const row = out.split('\n').find((l) => l.startsWith(prefix));
      expect(row, prefix).toBeDefined();
      return Number(row!.split('|')[3]!.trim());
    };
    expect(diff('| RWKV-4 forward (parallel) vs step (recurrent), float32 |')).toBeLessThan(1e-4);
    expect(diff('| RWKV-4 forward (parallel) vs step (recurrent), float64 |')).toBeLessThan(1e-12);
    expect(diff('| attention baseline: KV-cache decoding vs parallel fam.blockAttention, float32 |')).toBeLessThan(
      1e-4,
    );
    expect(out).toContain(
      '| context (tokens) | RWKV-4 step (ms/token) | softmax attention, KV cache (ms/token) | attention / RWKV |',
    );
    for (const n of [16, 64]) {
      const row = out.split('\n').find((l) => l.startsWith(`| ${n} |`));
      expect(row, `context ${n}`).toBeDefined();
      const cells = row!
        .split('|')
        .slice(2, -1)
        .map((c) => Number(c.trim()));
      expect(cells.every((c) => Number.isFinite(c) && c > 0)).toBe(true);
    }
  }, 40_000);
});
