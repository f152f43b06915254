// The package.json that goes into the tarball: the repo's own, without the `jobgate-source` export
// condition (it names ./src/*.ts, which the tarball does not ship; the repo's scripts, tsc and
// vitest resolve through it). `strip` runs last in prepack, `restore` in postpack:
//
//   node scripts/pack-manifest.js strip     package.json → package.json.repo (byte for byte), then
//                                           package.json written without the condition
//   node scripts/pack-manifest.js restore   package.json.repo → package.json, if it is there
//
// The original is never lost: it is kept whole in package.json.repo before package.json is touched,
// and every write is a rename of a finished file. If a pack stops between the two (npm killed, the
// tar failed), package.json.repo stays, `git status` shows both files, and the next `npm pack`
// (its strip) or `node scripts/pack-manifest.js restore` puts the original back first.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CONDITION = 'jobgate-source';
const root = new URL('..', import.meta.url).pathname;
const manifest = join(root, 'package.json');
const kept = join(root, 'package.json.repo');

/** Writes beside the target, then renames: a reader sees the old file or the new one, never half of one. */
function writeWhole(path, text) {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** `exports` without the condition, at any depth; the order of the others is kept (types first, default last). */
function withoutCondition(value) {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(withoutCondition);
  return Object.fromEntries(Object.entries(value).filter(([key]) => key !== CONDITION).map(([key, v]) => [key, withoutCondition(v)]));
}

/** Every file path `exports` (and `types`) name, e.g. ./dist/index.js. */
function targets(value) {
  if (typeof value === 'string') return [value];
  if (typeof value !== 'object' || value === null) return [];
  return Object.values(value).flatMap(targets);
}

function restore() {
  if (existsSync(kept)) renameSync(kept, manifest);
}

function strip() {
  // a pack that stopped before its postpack left the original here: it is the one to strip
  restore();
  const original = readFileSync(manifest, 'utf8');
  const pkg = JSON.parse(original);
  if (!original.includes(CONDITION)) {
    throw new Error(`package.json names no "${CONDITION}" condition: it is not the repo's own (restore it from git before packing)`);
  }
  const packed = { ...pkg, exports: withoutCondition(pkg.exports) };
  const text = `${JSON.stringify(packed, null, 2)}\n`;
  if (text.includes(CONDITION)) throw new Error(`"${CONDITION}" is still in the packed package.json outside exports`);
  // the tarball must hold every file its package.json points at (prepack built dist/ just before)
  const missing = [...targets(packed.exports), ...targets(packed.types)].filter((target) => !existsSync(join(root, target)));
  if (missing.length > 0) throw new Error(`package.json points at files the build did not make: ${missing.join(', ')}`);
  writeWhole(kept, original);
  writeWhole(manifest, text);
}

const command = process.argv[2];
if (command === 'strip') strip();
else if (command === 'restore') restore();
else {
  process.stderr.write('usage: node scripts/pack-manifest.js strip|restore\n');
  process.exit(2);
}
