#!/usr/bin/env node
// The `jobgate` command (npx jobgate …). The CLI is TypeScript run by Node 24's type stripping: on
// an older node (a system Node 20 running this file directly) it re-runs itself on the project's
// own Node 24, the `node` devDependency, the same one `npm start` and `npm test` use.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// The sources import the jobgate library by its `jobgate-source` export condition (the repo runs its .ts):
// on Node 24 a resolve hook adds that condition in this process, so there is one process, not two.
const cli = new URL('../src/cli.ts', import.meta.url);
if (Number(process.versions.node.split('.')[0]) >= 24) {
  const { registerHooks } = await import('node:module');
  registerHooks({ resolve: (specifier, context, next) => next(specifier, { ...context, conditions: [...context.conditions, 'jobgate-source'] }) });
  const { main } = await import(cli.href);
  await main(process.argv.slice(2));
} else {
  let node;
  try {
    node = createRequire(import.meta.url).resolve('node/bin/node');
  } catch {
    process.stderr.write(`jobgate needs Node 24 or newer (this is ${process.version}); run npm install in the project first\n`);
    process.exit(1);
  }
  const child = spawn(node, ['--conditions=jobgate-source', fileURLToPath(cli), ...process.argv.slice(2)], { stdio: 'inherit' });
  // pass stop signals on (a service manager, `timeout`, Ctrl-C), so `jobgate work` stops cleanly
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('error', (err) => {
    process.stderr.write(`jobgate: could not start ${node}: ${err.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15, SIGKILL: 9 }[signal] ?? 0) : 1)));
}
