// After tsc: the admin's static files (served and imported as they are) go beside the built code,
// and declarations name their siblings as .js, which every consumer's TypeScript resolves.
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
// the browser script's tsconfig.json only type-checks it in the repo
cpSync(join(root, 'src/main/admin/assets'), join(root, 'dist/main/admin/assets'), { recursive: true, filter: (from) => !from.endsWith('tsconfig.json') });
for (const entry of readdirSync(join(root, 'dist'), { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.d.ts')) continue;
  const file = join(entry.parentPath, entry.name);
  const text = readFileSync(file, 'utf8');
  const fixed = text.replace(/(from\s+|import\()(['"])(\.{1,2}\/[^'"]+)\.ts\2/g, '$1$2$3.js$2');
  if (fixed !== text) writeFileSync(file, fixed);
}
