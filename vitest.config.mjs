import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native addons and worker threads do not mix well: one process per file.
    pool: 'forks',
    // The soak test measures RSS after a forced collection.
    execArgv: ['--expose-gc'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The suites import the built package (dist/) exactly as users do; load it
    // with Node's own loader rather than transforming it.
    server: { deps: { external: [/\/dist\//] } },
  },
});
