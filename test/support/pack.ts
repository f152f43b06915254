// What test/e2e/example-app.test.ts installs the way a user would, with npm: the library's own tarball
// (`npm pack`, packed once per run of the e2e tier in setup-e2e.ts) and the oldest Node it claims to run on.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The path of `npm pack`'s tarball of packages/jobgate (built by its prepack). */
    jobgateTarball: string;
  }
}

const ROOT = join(import.meta.dirname, '../..');

/** npm's own variables (npm_config_local_prefix and friends, set by `npm test`) stay out of a child npm. */
export function npmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
}

/** The head and the tail of a long output: a compiler's errors come first, a stack trace last. */
const clip = (text: string) => (text.length <= 6_000 ? text : `${text.slice(0, 3_000)}\n…\n${text.slice(-3_000)}`);

/** Runs a command to its end; rejects with its output when it fails. */
export function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? npmEnv(), stdio: ['ignore', 'pipe', 'pipe'], timeout: options.timeoutMs ?? 180_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${command} ${args.join(' ')} (in ${options.cwd}) exited with ${code ?? signal}\n${clip(stdout)}\n${clip(stderr)}`));
    });
  });
}

let packDir: string | undefined;

/** `npm pack` of packages/jobgate into a temp dir (its prepack builds dist/ first): the tarball's path. */
export async function packLibrary(): Promise<string> {
  packDir = mkdtempSync(join(tmpdir(), 'jobgate-pack-'));
  await run('npm', ['pack', '--silent', '--pack-destination', packDir], { cwd: join(ROOT, 'packages/jobgate') });
  const tarballs = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
  if (tarballs.length !== 1) throw new Error(`npm pack left ${tarballs.length} tarballs in ${packDir}`);
  return join(packDir, tarballs[0]!);
}

/** setup-e2e's teardown: the tarball's temp dir goes. */
export function removePackedLibrary(): void {
  if (packDir) rmSync(packDir, { recursive: true, force: true });
}

/** The oldest Node jobgate says it runs on: the version in its package.json's `engines.node` (`>=22.12.0`). */
export function oldestSupportedNode(): string {
  const { engines } = JSON.parse(readFileSync(join(ROOT, 'packages/jobgate/package.json'), 'utf8')) as { engines?: { node?: string } };
  const floor = /^>=\s*(\d+\.\d+\.\d+)$/.exec(engines?.node ?? '')?.[1];
  if (!floor) throw new Error(`packages/jobgate/package.json: engines.node is ${JSON.stringify(engines?.node)}, not ">=X.Y.Z"`);
  return floor;
}

const nodeBinary = (dir: string) => join(dir, 'node_modules/node/bin/node');

/**
 * The path of a Node `version` binary: `npm install node@<version>` (the `node` package's
 * preinstall fetches the binary through npm) into .data/node-v<version> on first use, kept there.
 * Not a devDependency of the repo: an aliased `node22@npm:node@22` brings a second `node` bin,
 * which takes node_modules/.bin/node from the Node 24 that every npm script here runs on.
 */
export async function installNode(version: string): Promise<string> {
  const dir = join(ROOT, `.data/node-v${version}`);
  if (existsSync(nodeBinary(dir))) return nodeBinary(dir);
  mkdirSync(join(ROOT, '.data'), { recursive: true });
  // installed beside its place and renamed into it, so two runs at once never use half an install
  const staging = mkdtempSync(join(ROOT, `.data/node-v${version}-installing-`));
  try {
    writeFileSync(join(staging, 'package.json'), JSON.stringify({ private: true, allowScripts: { node: true } }));
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', `node@${version}`], { cwd: staging });
    if (!existsSync(nodeBinary(staging))) throw new Error(`npm install node@${version} left no binary at ${nodeBinary(staging)}`);
    try {
      renameSync(staging, dir);
    } catch (err) {
      // another run got there first: use its install
      if (!existsSync(nodeBinary(dir))) throw err;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return nodeBinary(dir);
}
