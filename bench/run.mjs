#!/usr/bin/env node
// `npm run bench [-- name ...] [-- --quick] [-- --no-record]`: compiles bench/*.bench.ts, measures
// the machine's copy bandwidth once, runs each benchmark (each validates its
// result before timing), prints one table and appends it to bench/RESULTS.md.
import { execFileSync } from 'node:child_process';
import { appendFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const record = !args.includes('--no-record');
const only = args.filter((a) => !a.startsWith('--'));

const outDir = join(root, 'build', 'bench-js');
execFileSync(
  process.execPath,
  [require.resolve('typescript/bin/tsc'), '-p', join(root, 'bench', 'tsconfig.json'), '--outDir', outDir],
  {
    stdio: 'inherit',
  },
);
const lmk = require('lmkernels');
const harness = require(join(outDir, 'harness.js'));

const benches = readdirSync(join(root, 'bench'))
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.replace(/\.bench\.ts$/, ''))
  .filter((name) => only.length === 0 || only.includes(name));

const copyBandwidth = await harness.measureCopyBandwidth();
const ctx = { copyBandwidth, quick };
const rows = [];
for (const name of benches) {
  const mod = require(join(outDir, `${name}.bench.js`));
  process.stderr.write(`bench ${name} ...\n`);
  rows.push(...(await mod.run(ctx)));
}

const metricNames = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))];
const header = ['bench', 'case', 'ms', ...metricNames];
const lines = rows.map((r) => [r.bench, r.case, r.ms.toFixed(3), ...metricNames.map((m) => r.metrics[m] ?? '')]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
const fmt = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
console.log(fmt(header));
for (const l of lines) console.log(fmt(l));

if (record) {
  const info = lmk.backendInfo();
  const machine =
    `${hostname()}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${info.cpu.threads} threads` +
    (info.cuda.available ? `, ${info.cuda.devices.map((d) => d.name).join(', ')}` : ', no GPU');
  const md = [
    '',
    `## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC — ${machine}${quick ? ' (quick)' : ''}`,
    '',
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...lines.map((l) => `| ${l.join(' | ')} |`),
    '',
  ].join('\n');
  appendFileSync(join(root, 'bench', 'RESULTS.md'), md);
  console.log(`\nappended to bench/RESULTS.md`);
}
