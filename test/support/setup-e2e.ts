// The `e2e` tier's global setup: the database of setup-database.ts, and the library as users get it
// (one `npm pack`, whose prepack rebuilds dist/; test/e2e/example-app.test.ts installs it), then the
// reference apps built on that dist/ as Render runs them (render.yaml's start commands): the tests
// of this tier start them as processes. The pack runs while the database starts.
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { packLibrary, removePackedLibrary, run } from './pack.ts';
import { setup as setupDatabase } from './setup-database.ts';

const ROOT = join(import.meta.dirname, '../..');

export async function setup(project: TestProject): Promise<() => Promise<void>> {
  const packed = packLibrary();
  packed.catch(() => {});
  const teardownDatabase = await setupDatabase(project);
  try {
    project.provide('jobgateTarball', await packed);
    for (const app of ['main', 'fetcher']) await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, `apps/${app}/tsconfig.build.json`)], { cwd: ROOT });
  } catch (err) {
    removePackedLibrary();
    await teardownDatabase();
    throw err;
  }
  return async () => {
    removePackedLibrary();
    await teardownDatabase();
  };
}
