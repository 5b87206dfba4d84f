import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import * as lmk from 'lmkernels';

function inChild(code: string, env: Record<string, string> = {}): string {
  return execFileSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env, ...env } }).trim();
}

describe('devices and backend', () => {
  it('backendInfo reports the CPU pool and whether CUDA is compiled and usable', () => {
    const info = lmk.backendInfo();
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.cpu.threads).toBeGreaterThanOrEqual(1);
    expect(typeof info.cuda.compiled).toBe('boolean');
    expect(info.cuda.available).toBe(lmk.cudaAvailable());
    expect(['openblas', 'builtin']).toContain(info.gemm.cpu);
    expect(['cublas', 'builtin', 'unavailable']).toContain(info.gemm.cuda);
  });

  it.skipIf(lmk.cudaAvailable())('without a usable GPU: no CUDA GEMM, a reason, no CUDA devices', () => {
    const info = lmk.backendInfo();
    expect(info.gemm.cuda).toBe('unavailable');
    expect(info.cuda.reason).toMatch(/\w+/);
    expect(info.cuda.devices).toEqual([]);
  });

  // LMK_EXPECT_CUDA_COMPILED is set by .ci/run where nvcc is present.
  it.runIf(process.env.LMK_EXPECT_CUDA_COMPILED === '1' && !lmk.cudaAvailable())(
    'on a machine with the CUDA toolkit but no driver: compiled, not available, default cpu',
    () => {
      const info = lmk.backendInfo();
      expect(info.cuda.compiled).toBe(true);
      expect(info.cuda.available).toBe(false);
      expect(info.cuda.reason).toMatch(/driver|device/i);
      expect(lmk.defaultDevice().toString()).toBe('cpu');
    },
  );

  it('devices() lists cpu first', () => {
    const list = lmk.devices();
    expect(list[0]!.toString()).toBe('cpu');
    expect(list[0]!.kind).toBe('cpu');
    expect(list.length).toBe(1 + (lmk.cudaAvailable() ? lmk.backendInfo().cuda.devices.length : 0));
  });

  it('LMK_DEVICE overrides the automatic default; setDefaultDevice overrides both', () => {
    expect(inChild(`console.log(String(require('lmkernels').defaultDevice()))`, { LMK_DEVICE: 'cpu' })).toBe('cpu');
    const bogus = inChild(
      `try { require('lmkernels').defaultDevice(); console.log('no error') } catch (e) { console.log(e.constructor.name + ': ' + e.message) }`,
      { LMK_DEVICE: 'tpu' },
    );
    expect(bogus).toMatch(/^TypeError: defaultDevice: LMK_DEVICE must be 'cpu'/);
    const tensorDevice = inChild(
      `const l = require('lmkernels'); l.setDefaultDevice('cpu'); console.log(String(l.zeros([1]).device))`,
      { LMK_DEVICE: 'cpu' },
    );
    expect(tensorDevice).toBe('cpu');
  });

  it('synchronize() resolves once queued work is done', async () => {
    const t = lmk.randn([1 << 16], { seed: 1 });
    await lmk.synchronize();
    await lmk.synchronize('cpu');
    await lmk.synchronize(lmk.devices()[0]);
    expect(t.dataSync().length).toBe(1 << 16);
    expect(() => lmk.synchronize('gpu' as never)).toThrow(/synchronize: device must be/);
  });

  it('the doctor CLI prints a table and exits 0', () => {
    const out = execFileSync(
      process.execPath,
      [require.resolve('lmkernels/package.json').replace('package.json', 'dist/cjs/cli.js'), 'doctor'],
      {
        encoding: 'utf8',
      },
    );
    expect(out).toMatch(/lmkernels doctor/);
    expect(out).toMatch(/cuda compiled\s+(true|false)/);
    expect(out).toMatch(/default device\s+(cpu|cuda:0)/);
  });
});
