// The dashboard's browser script is checked against the DOM's types (assets/tsconfig.json): the
// root type-check has Node's types instead, so this runs the browser's check in the unit tier.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('assets/admin.js type-checks against the DOM', async () => {
  const project = fileURLToPath(new URL('./assets/tsconfig.json', import.meta.url));
  const tsc = fileURLToPath(new URL('../../../../../node_modules/typescript/bin/tsc', import.meta.url));
  const run = await promisify(execFile)(process.execPath, [tsc, '-p', project], { timeout: 60_000 }).catch((err: { stdout?: string; code?: number }) => err);
  expect('code' in run && run.code ? run.stdout : '').toBe('');
});
