// The typed addon boundary (lib/native.ts): the addon exports exactly the
// entry points native.ts declares, no more and no fewer; and when no binary
// loads, the error says what to run.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
// Internal module, loaded from the same build the public API uses.
import { NATIVE_ENTRY_POINTS, native } from '../dist/cjs/native.js';

describe('the native addon boundary', () => {
  it('exports exactly the entry points lib/native.ts declares', () => {
    const exported = Object.keys(native()).sort();
    const declared = [...NATIVE_ENTRY_POINTS].sort();
    expect(exported.filter((name) => !declared.includes(name as never))).toEqual([]); // undeclared exports
    expect(declared.filter((name) => !exported.includes(name))).toEqual([]); // declared but missing
    for (const name of declared) expect(typeof (native() as unknown as Record<string, unknown>)[name]).toBe('function');
  });
});

describe('a missing or broken binary', () => {
  const root = resolve(__dirname, '..');

  // The package as a project installs it, with dist/ only: no build/, no prebuilds/.
  function installedCopy(): { project: string; pkg: string } {
    const project = mkdtempSync(join(tmpdir(), 'lmk-nobinary-'));
    const pkg = join(project, 'node_modules', 'lmkernels');
    mkdirSync(join(pkg, 'node_modules'), { recursive: true });
    writeFileSync(
      join(pkg, 'package.json'),
      JSON.stringify({ name: 'lmkernels', version: '0.0.0-test', main: './dist/cjs/index.js' }),
    );
    cpSync(join(root, 'dist'), join(pkg, 'dist'), { recursive: true });
    symlinkSync(join(root, 'node_modules', 'node-gyp-build'), join(pkg, 'node_modules', 'node-gyp-build'));
    return { project, pkg };
  }

  function loadError(project: string): string {
    const env = { ...process.env };
    delete env.PREBUILDS_ONLY;
    try {
      execFileSync(process.execPath, ['-e', "require('lmkernels').zeros([1])"], { cwd: project, env, stdio: 'pipe' });
    } catch (error) {
      return String((error as { stderr: Buffer }).stderr);
    }
    throw new Error('lmkernels loaded without a binary');
  }

  it('says that the install script did not run and exactly what to run', () => {
    const { project, pkg } = installedCopy();
    try {
      const message = loadError(project);
      expect(message).toContain(`lmkernels: no native binary for ${process.platform}-${process.arch}`);
      expect(message).toContain('the install script that builds it has not run');
      expect(message).toContain('npm 11 and pnpm hold back');
      expect(message).toContain('npm approve-scripts lmkernels && npm rebuild lmkernels');
      expect(message).toContain('pnpm approve-builds');
      expect(message).toContain(`cd ${JSON.stringify(pkg)} && npx cmake-js compile`);
      expect(message).toContain('npx lmkernels doctor');
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });

  it('names a binary that is there but does not load, and how to build one', () => {
    const { project, pkg } = installedCopy();
    try {
      const dir = join(pkg, 'prebuilds', `${process.platform}-${process.arch}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'lmkernels.glibc.node'), 'not a shared library');
      const message = loadError(project);
      expect(message).toContain(`the native binary ${join(dir, 'lmkernels.glibc.node')} does not load`);
      expect(message).toContain(`cd ${JSON.stringify(pkg)} && npx cmake-js compile`);
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });
});
