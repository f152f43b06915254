// The documentation cannot drift from the code: every TypeScript block of the README and of
// docs/*.md is type-checked (strict) in a scratch project that has the packed library installed
// with npm, as an adopter's app has it; every relative link points at a file (and heading) that
// exists; the README stays short and links every page; no page names an internal work item, a
// date or a commit.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { run } from '../support/pack.ts';

const ROOT = join(import.meta.dirname, '../..');
const PAGES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const read = (page: string) => readFileSync(join(ROOT, page), 'utf8');

// ------------------------------------------------------------------ markdown, just enough of it

interface Fence { lang: string; code: string; /** 1-based line of the block's first code line. */ line: number }

/** The fenced blocks of a page (``` or ~~~, three or more), with the line each starts on. */
export function fences(markdown: string): Fence[] {
  const lines = markdown.split('\n');
  const out: Fence[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)/.exec(lines[i]!);
    if (!open) continue;
    const marker = open[1]!;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j]!.trimStart().startsWith(marker); j++) body.push(lines[j]!);
    out.push({ lang: open[2]!.toLowerCase(), code: body.join('\n'), line: i + 2 });
    i = j;
  }
  return out;
}

/** The page with its fenced blocks blanked (their lines kept, so line numbers hold). */
function withoutFences(markdown: string): string {
  const lines = markdown.split('\n');
  const kept: string[] = [];
  let marker: string | null = null;
  for (const line of lines) {
    const fence = /^ {0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (marker) {
      if (line.trimStart().startsWith(marker)) marker = null;
      kept.push('');
    } else if (fence) {
      marker = fence;
      kept.push('');
    } else kept.push(line);
  }
  return kept.join('\n');
}

/** The page without its fenced blocks and inline code spans (links inside code are not links). */
function prose(markdown: string): string {
  return withoutFences(markdown).replace(/(`+)[^`\n]*?\1/g, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of withoutFences(markdown).replace(/`/g, '').split('\n')) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const base = heading.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  return out;
}

/** Relative link targets of a page: `[text](target)` and `![alt](target)`, outside code. */
function links(markdown: string): Array<{ target: string; line: number }> {
  const out: Array<{ target: string; line: number }> = [];
  prose(markdown).split('\n').forEach((text, i) => {
    for (const m of text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
      out.push({ target, line: i + 1 });
    }
  });
  return out;
}

// ------------------------------------------------------------------ what user documentation never says

/** Internal work items, session dates and commit hashes; each with what it caught. */
export function internalReferences(text: string): string[] {
  const patterns = [
    /\bissues?\s+#?\d+/gi,                                                         // "issue 14", "issues 12"
    /(?<![\w/&#-])#\d{2,}\b/g,                                                       // "#24" (not owner/repo#24, not &#39;)
    /(?<![\w-])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w-])/g,          // a commit hash (not part of a UUID)
    /\b20\d\d-[01]\d-[0-3]\d\b/g,                                                   // a date
  ];
  return patterns.flatMap((p) => [...text.matchAll(p)].map((m) => m[0]));
}

// ------------------------------------------------------------------ the code blocks, as files

interface Source { page: string; file: string; line: number; code: string }

const FRAGMENT = /^\/\/ fragment\b/;
const FILE_NAME = /^\/\/ ([\w.-]+\.ts)\b/;

/** Every TypeScript block of every page: the checked ones as files of a per-page directory, and the fragments. */
function sources(): { checked: Source[]; fragments: Source[] } {
  const checked: Source[] = [];
  const fragments: Source[] = [];
  for (const page of PAGES) {
    for (const block of fences(read(page)).filter((f) => f.lang === 'ts' || f.lang === 'typescript')) {
      const first = block.code.split('\n', 1)[0]!;
      const file = FILE_NAME.exec(first)?.[1] ?? `block-line-${block.line}.ts`;
      (FRAGMENT.test(first) ? fragments : checked).push({ page, file, line: block.line, code: block.code });
    }
  }
  return { checked, fragments };
}

const pageDir = (page: string) => page.replace(/\.md$/, '').replace(/[^\w-]/g, '_');

// ------------------------------------------------------------------ the tests

describe('the markdown helpers', () => {
  it('find what they must, and only that', () => {
    expect(internalReferences('fixed in issue 14, see #24, at 00e87af on 2026-11-27, and Issues 3')).toEqual(['issue 14', 'Issues 3', '#24', '00e87af', '2026-11-27']);
    // a UUID, a base64 signature, an HTML entity, an external repository's issue, plain words and numbers
    expect(internalReferences('fwd_0b7e3c1e-5a43-4a0e-9b8e-2d2f6c1d9a10 v1,D5U6R5MoluT6CDxqINhkZE/+u2V98tjff+DQEAUrlTs= &#39; timgit/pg-boss#551 defaced 1767225600 0.5×')).toEqual([]);
    expect([...anchors('# A `code` title\n## Startup: built JS\n```\n# not a heading\n```\n## Startup: built JS')]).toEqual(['a-code-title', 'startup-built-js', 'startup-built-js-1']);
    expect(fences('text\n```ts\n// a.ts\nconst x = 1;\n```\n````md\n```ts\ninner\n```\n````')).toEqual([
      { lang: 'ts', code: '// a.ts\nconst x = 1;', line: 3 },
      { lang: 'md', code: '```ts\ninner\n```', line: 7 },
    ]);
  });
});

describe('the pages', () => {
  it('README.md is at most 260 lines and links every page of docs/', () => {
    const readme = read('README.md');
    expect(readme.split('\n').length, 'README.md lines').toBeLessThanOrEqual(260);
    const linked = new Set(links(readme).map((l) => l.target.split('#')[0]));
    const unlinked = PAGES.filter((p) => p.startsWith('docs/') && !linked.has(p));
    expect(unlinked, 'docs pages the README does not link').toEqual([]);
  });

  it('name no internal work item, session date or commit hash', () => {
    const found = PAGES.flatMap((page) => internalReferences(read(page)).map((ref) => `${page}: ${ref}`));
    expect(found).toEqual([]);
  });

  it('link only to files and headings that exist', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const page of PAGES) {
      for (const { target, line } of links(read(page))) {
        checked++;
        const [path = '', anchor] = target.split('#');
        const file = path ? resolve(dirname(join(ROOT, page)), decodeURIComponent(path)) : join(ROOT, page);
        if (!file.startsWith(ROOT) || !existsSync(file)) {
          broken.push(`${page}:${line}: ${target} (no such file)`);
          continue;
        }
        if (anchor && file.endsWith('.md') && !anchors(readFileSync(file, 'utf8')).has(anchor)) {
          broken.push(`${page}:${line}: ${target} (no heading #${anchor} in ${relative(ROOT, file)})`);
        }
      }
    }
    expect(broken).toEqual([]);
    expect(checked).toBeGreaterThan(PAGES.length);
  });

  it('mark few TypeScript blocks as fragments, each saying why', () => {
    const { fragments } = sources();
    for (const f of fragments) expect(f.code.split('\n', 1)[0], `${f.page}:${f.line}`).toMatch(/^\/\/ fragment: \S.{20,}/);
    expect(fragments.length).toBeLessThanOrEqual(3);
  });
});

describe('every TypeScript block, against the packed library', () => {
  let work: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'jobgate-docs-'));
    const versions = { ...JSON.parse(read('package.json')).devDependencies, ...JSON.parse(read('packages/jobgate/package.json')).dependencies, ...JSON.parse(read('packages/jobgate/package.json')).devDependencies } as Record<string, string>;
    const want = (name: string) => `${name}@${versions[name]}`;
    writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'docs-check', private: true, type: 'module' }));
    // what the README tells an adopter to install, and kysely for the guide's Kysely example
    const started = Date.now();
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', inject('jobgateTarball'), ...['express', 'pg', 'zod', 'kysely', '@types/express', '@types/node', '@types/pg'].map(want)], { cwd: work, timeoutMs: 240_000 });
    console.log(`docs: npm install of the tarball and the docs' dependencies took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }, 300_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('type-checks with strict: each page a project of its own files, in order', async () => {
    const { checked } = sources();
    const origin = new Map<string, Source>();
    for (const source of checked) {
      const path = `pages/${pageDir(source.page)}/${source.file}`;
      expect(origin.has(path), `${source.page}:${source.line} names ${source.file} a second time`).toBe(false);
      origin.set(path, source);
      mkdirSync(join(work, dirname(path)), { recursive: true });
      writeFileSync(join(work, path), `${source.code}\n`);
    }
    // Proof that the blocks meet jobgate's declarations, not `any`: these errors must happen, or tsc
    // fails on the unused directives.
    writeFileSync(join(work, 'pages/probe.ts'), `import { createMain, defineJob } from 'jobgate';
import { z } from 'zod';
// @ts-expect-error: databaseUrl is required
void createMain({});
const job = defineJob({ name: 'probe.job', payload: z.object({ n: z.number() }), async run() {} });
declare const main: Awaited<ReturnType<typeof createMain>>;
// @ts-expect-error: the payload's n is a number
void main.performLater(job, { n: 'one' });
`);
    writeFileSync(join(work, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'es2023', lib: ['es2023'], module: 'nodenext', moduleResolution: 'nodenext', types: ['node'],
        strict: true, noEmit: true, allowImportingTsExtensions: true, erasableSyntaxOnly: true, verbatimModuleSyntax: true,
        isolatedModules: true, forceConsistentCasingInFileNames: true,
        // pg-boss's own declarations need it (the README says so to adopters too)
        skipLibCheck: true,
      },
      include: ['pages'],
    }, null, 2));
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    // the whole output, also when tsc fails (exit 2 with its errors on stdout)
    const output = await promisify(execFile)(process.execPath, [tsc, '-p', '.', '--listFiles'], { cwd: work, timeout: 120_000, maxBuffer: 64 * 2 ** 20 }).then(
      ({ stdout }) => stdout,
      (err: { stdout?: string; stderr?: string; message: string }) => `${err.stdout ?? ''}\n${err.stderr ?? ''}\n${err.stdout ? '' : err.message}`,
    );
    // tsc's "pages/docs_guide/jobs.ts(12,5): error TS…" as "docs/guide.md:123: error TS…"
    const errors = output.split('\n').flatMap((line) => {
      const m = /^(pages\/[^(]+)\((\d+),(\d+)\): (error .*)$/.exec(line.trim());
      if (!m) return /error TS/.test(line) ? [line.trim()] : [];
      const source = origin.get(m[1]!);
      return [source ? `${source.page}:${source.line + Number(m[2]) - 1}: ${m[4]}` : `${m[1]}(${m[2]},${m[3]}): ${m[4]}`];
    });
    expect(errors).toEqual([]);
    // the blocks were read, and jobgate's declarations came from the tarball
    expect(output).toContain(join(work, 'node_modules/jobgate/dist/index.d.ts'));
    for (const page of ['README.md', 'docs/guide.md']) expect(checked.filter((s) => s.page === page).length, page).toBeGreaterThanOrEqual(3);
    console.log(`docs: ${checked.length} TypeScript blocks of ${new Set(checked.map((s) => s.page)).size} pages type-checked`);
  }, 180_000);
});
