#!/usr/bin/env node
// prebuildify 6 builds with node-gyp (`node-gyp rebuild --target=... --arch=...
// --release`); this stands in for node-gyp and runs cmake-js instead, which
// writes build/Release/lmkernels.node where prebuildify looks for it.
// LMK_PREBUILD_INCREMENTAL=1 reuses an existing build/ (`cmake-js compile`),
// as CI does after building the addon once.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
if (args[0] !== 'rebuild') {
  console.error(`prebuildify-cmake-js: expected 'rebuild', got ${JSON.stringify(args)}`);
  process.exit(2);
}
const arch = args.find((a) => a.startsWith('--arch='));
const debug = args.includes('--debug');
const command = process.env.LMK_PREBUILD_INCREMENTAL === '1' ? 'compile' : 'rebuild';
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const cmakeArgs = [cmakeJs, command, ...(arch ? [arch] : []), ...(debug ? ['--debug'] : [])];
console.error(`prebuildify-cmake-js: cmake-js ${cmakeArgs.slice(1).join(' ')}`);
const result = spawnSync(process.execPath, cmakeArgs, { stdio: 'inherit' });
process.exit(result.status ?? 1);
