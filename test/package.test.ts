// The shipped package: `npm pack`, install into an empty project on a PATH
// with no cmake, nvcc or g++, load the prebuilt binary only (PREBUILDS_ONLY=1)
// and run an op, through both require() and import.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
  mkdirSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..');
const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'lmkernels.glibc.node');

describe('packed tarball', () => {
  it('installs into an empty project without a compiler and runs an op from the prebuilt binary', () => {
    if (!existsSync(prebuilt)) {
      execFileSync('npm', ['run', 'prebuilds'], {
        cwd: root,
        stdio: 'inherit',
        env: { ...process.env, LMK_PREBUILD_INCREMENTAL: '1' },
      });
    }
    expect(existsSync(prebuilt)).toBe(true);
    const work = mkdtempSync(join(tmpdir(), 'lmk-pack-'));
    try {
      // dist/ is already built by `npm test`; skip prepare so the running suites keep their dist/.
      execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', work], { cwd: root, stdio: 'pipe' });
      const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
      expect(tarball).toBeDefined();

      // A PATH holding node, npm and sh only (npm runs install scripts with sh).
      const bin = join(work, 'bin');
      mkdirSync(bin);
      symlinkSync(realpathSync(process.execPath), join(bin, 'node'));
      const npmCli = realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
      symlinkSync(npmCli, join(bin, 'npm'));
      symlinkSync('/bin/sh', join(bin, 'sh'));
      const env = { ...process.env, PATH: bin, PREBUILDS_ONLY: '1', npm_config_update_notifier: 'false' };
      for (const tool of ['cmake', 'nvcc', 'g++', 'c++', 'make']) {
        expect(() => execFileSync('/bin/sh', ['-c', `command -v ${tool}`], { env, stdio: 'pipe' })).toThrow();
      }

      const project = join(work, 'consumer');
      mkdirSync(project);
      writeFileSync(
        join(project, 'package.json'),
        JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }),
      );
      execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(work, tarball!)], {
        cwd: project,
        env,
        stdio: 'pipe',
      });
      const installed = join(project, 'node_modules', 'lmkernels');
      expect(existsSync(join(installed, 'build'))).toBe(false); // nothing was compiled
      expect(
        existsSync(join(installed, 'prebuilds', `${process.platform}-${process.arch}`, 'lmkernels.glibc.node')),
      ).toBe(true);

      const cjs = execFileSync(
        'node',
        [
          '-e',
          `const l = require('lmkernels'); const t = l.tensor([1, 2, 3]); console.log(Array.from(t.dataSync()).join(','), l.backendInfo().version)`,
        ],
        { cwd: project, env, encoding: 'utf8' },
      );
      expect(cjs.trim()).toMatch(/^1,2,3 \d+\.\d+\.\d+$/);
      const esm = execFileSync(
        'node',
        [
          '--input-type=module',
          '-e',
          `import * as l from 'lmkernels'; const t = l.arange(4); console.log((await t.data()).join(','), String(l.defaultDevice()))`,
        ],
        { cwd: project, env, encoding: 'utf8' },
      );
      expect(esm.trim()).toMatch(/^0,1,2,3 (cpu|cuda:0)$/);
      const types = ['dist/cjs/index.d.ts', 'dist/esm/index.d.mts', 'dist/esm/index.mjs'];
      for (const f of types) expect(existsSync(join(installed, f))).toBe(true);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 300_000);
});
