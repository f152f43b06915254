import { defineConfig } from 'vitest/config';

// The library is imported by its `jobgate-source` export condition: the repo runs its TypeScript (package.json).
const conditions = ['jobgate-source', 'module', 'node', 'development|production'];

// Three tiers (`npm test` runs them all; `npm run test:unit|test:db|test:e2e` one):
// - unit: beside the code, pure logic; no PostgreSQL, no build, no process of our own.
// - db:   test/db, the library in-process on a real PostgreSQL (one cloned database per file).
// - e2e:  test/e2e, the apps as processes over real sockets, the packed tarball, the browser.
export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['jobgate-source'] } },
  test: {
    testTimeout: 60_000,
    hookTimeout: 90_000,
    // Four files at a time on 2 cores: the e2e files spend most of their time waiting (for apps
    // to start, retries to come due, timeouts to pass), not computing. Measured on 2 cores: three
    // at a time took 532 s, four 423 s (the CPU 11 % idle on average), and 507 s beside a CPU hog,
    // every test passing.
    maxWorkers: 4,
    // the summary, then the slowest files (test/support/slowest-files.ts)
    reporters: ['default', './test/support/slowest-files.ts'],
    projects: [
      { extends: true, test: { name: 'unit', include: ['packages/*/src/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'bench/**/*.test.ts'], testTimeout: 10_000 } },
      { extends: true, test: { name: 'db', include: ['test/db/**/*.test.ts'], globalSetup: ['test/support/setup-database.ts'] } },
      // a test that starts and stops processes one after another (the CLI's, npm start's) takes
      // minutes, not seconds, on a busy machine: its ceiling allows that. Each file first takes one
      // of the machine's e2e slots (machine-slots.ts), so two checkouts testing at once share them.
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], globalSetup: ['test/support/setup-e2e.ts'], setupFiles: ['test/support/machine-slots.ts'], testTimeout: 180_000, hookTimeout: 180_000 } },
    ],
  },
});
