// The previous release of jobgate, run beside this checkout's apps (test/e2e/compat-release.test.ts):
// its sources out of git (`git archive` of the release's commit into .data/compat/<commit>), run
// by Node from TypeScript as `npm start` runs them, with every dependency but jobgate itself
// resolved from this checkout's node_modules (same versions; the release's own `jobgate` is linked
// into its folder, so its apps and its test jobs import the release's library, not this one).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { SpawnExtras } from './apps.ts';

const ROOT = join(import.meta.dirname, '../..');

/**
 * The release the compatibility policy (docs/operations.md, "Compatibility") promises to work with:
 * the last one before this one. Until the first release is tagged, the commit before the signed
 * protocol's header signature (the latest change to the wire), so the window a rolling deploy
 * opens is what is tested. Move it forward at each release.
 */
export const PREVIOUS_RELEASE = { commit: 'f46b3833c072a9eebb6c2502f50fb78351650695', name: 'the release before the header signature' };

/** The release's sources, extracted once per checkout (atomically: two runs may ask at once). */
function extract(): string {
  const dir = join(ROOT, '.data/compat', PREVIOUS_RELEASE.commit);
  if (existsSync(join(dir, 'node_modules/jobgate'))) return dir;
  const temp = `${dir}.${process.pid}`;
  rmSync(temp, { recursive: true, force: true });
  mkdirSync(temp, { recursive: true });
  let archive: Buffer;
  try {
    archive = execFileSync('git', ['archive', '--format=tar', PREVIOUS_RELEASE.commit, 'packages/jobgate', 'apps', 'test/fixtures'], { cwd: ROOT, maxBuffer: 256 * 2 ** 20 });
  } catch (err) {
    throw new Error(`the previous release (${PREVIOUS_RELEASE.commit}) is not in this clone's history: clone with history (not --depth 1) to test compatibility\n${(err as Error).message}`);
  }
  execFileSync('tar', ['-x', '-C', temp], { input: archive });
  mkdirSync(join(temp, 'node_modules'));
  symlinkSync('../packages/jobgate', join(temp, 'node_modules/jobgate'));
  // what npm installed inside a workspace rather than at the top (undici, whose version differs
  // from another package's), as this checkout has it
  for (const workspace of ['packages/jobgate', 'apps/main', 'apps/fetcher']) {
    if (existsSync(join(ROOT, workspace, 'node_modules')) && existsSync(join(temp, workspace))) symlinkSync(join(ROOT, workspace, 'node_modules'), join(temp, workspace, 'node_modules'));
  }
  try {
    renameSync(temp, dir);
  } catch {
    rmSync(temp, { recursive: true, force: true });
    if (!existsSync(join(dir, 'node_modules/jobgate'))) throw new Error(`could not extract the previous release into ${dir}`);
  }
  return dir;
}

/** How to run the previous release's `app` (for startMain/startFetcher/startPair), with its own test jobs. */
export function previousRelease(app: 'main' | 'fetcher'): SpawnExtras {
  const dir = extract();
  return {
    script: join(dir, `apps/${app}/src/main.ts`),
    nodeArgs: ['--conditions=jobgate-source'],
    env: { JOBGATE_JOB_MODULES: join(dir, 'test/fixtures/test-jobs.ts') },
  };
}
