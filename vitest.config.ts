import { defineConfig } from 'vitest/config';

// The library is imported by its `jobgate-source` export condition: the repo runs its TypeScript (package.json).
const conditions = ['jobgate-source', 'module', 'node', 'development|production'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['jobgate-source'] } },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 90_000,
    // Cross-process tests spawn apps of their own; two files at a time fit 2 cores.
    maxWorkers: 2,
    // the summary, then the slowest files (test/support/slowest-files.ts)
    reporters: ['default', './test/support/slowest-files.ts'],
  },
});
