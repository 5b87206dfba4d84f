import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';

const dir = mkdtempSync(join(tmpdir(), 'lmk-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('safetensors', () => {
  it('round-trips every dtype bit for bit, with metadata', async () => {
    const tensors = {
      'a.weight': lmk.randn([3, 4], { seed: 1 }),
      b: lmk.randn([5], { seed: 2, dtype: 'bfloat16' }),
      c: lmk.randn([2, 2], { seed: 3, dtype: 'float16' }),
      d: lmk.tensor([1 / 3, Math.PI], { dtype: 'float64' }),
      e: lmk.tensor(new Int32Array([-7, 0, 2147483647])),
      scalar: lmk.tensor(2.5),
    };
    const path = join(dir, 'x.safetensors');
    await lmk.saveSafetensors(path, tensors, { step: '12' });
    const loaded = await lmk.loadSafetensors(path);
    expect(Object.keys(loaded).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const u = loaded[name]!;
      expect(u.dtype).toBe(t.dtype);
      expect(u.shape).toEqual(t.shape);
      expect(Array.from(await u.data())).toEqual(Array.from(await t.data()));
    }
    expect(await lmk.safetensorsMetadata(path)).toEqual({ step: '12' });
  });

  it('writes the documented layout (checked by parsing the bytes by hand)', async () => {
    const path = join(dir, 'y.safetensors');
    await lmk.saveSafetensors(path, {
      w: lmk.tensor([1, -2], { dtype: 'float32' }),
      h: lmk.tensor([1.5], { dtype: 'bfloat16' }),
    });
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
    expect(header.h).toEqual({ dtype: 'BF16', shape: [1], data_offsets: [0, 2] });
    expect(header.w).toEqual({ dtype: 'F32', shape: [2], data_offsets: [2, 10] });
    const data = bytes.subarray(8 + n);
    expect(data.readUInt16LE(0)).toBe(0x3fc0); // bfloat16 1.5
    expect(data.readFloatLE(2)).toBe(1);
    expect(data.readFloatLE(6)).toBe(-2);
  });

  it('reports bad files and arguments clearly', async () => {
    await expect(lmk.loadSafetensors(join(dir, 'missing.safetensors'))).rejects.toThrow(/ENOENT/);
    const bad = join(dir, 'bad.safetensors');
    writeFileSync(bad, Buffer.from([1, 2, 3]));
    await expect(lmk.loadSafetensors(bad)).rejects.toThrow(/loadSafetensors: .* too short/);
    const lying = join(dir, 'lying.safetensors');
    const h = Buffer.from(JSON.stringify({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    writeFileSync(lying, Buffer.concat([len, h, Buffer.alloc(4)]));
    await expect(lmk.loadSafetensors(lying)).rejects.toThrow(/tensor 'x' has offsets \[0, 16\] outside the file/);
    await expect(lmk.saveSafetensors(join(dir, 'z'), { x: 3 as never })).rejects.toThrow(TypeError);
  });
});
