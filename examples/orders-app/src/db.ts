// The app's own pool and tables. jobgate keeps its tables in schemas of its own in the same database.
import pg from 'pg';
import { config } from './config.ts';

export const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: 5 });
pool.on('error', (err) => console.error('orders-app: idle database connection failed', err.message));

export interface Order {
  id: number;
  item: string;
  quantity: number;
  import_job_id: string | null;
  imported_at: Date | null;
  imported_by: string | null;
  created_at: Date;
}

/** The server creates them at start; the fetcher's job only writes to them. */
export async function createTables(): Promise<void> {
  await pool.query(`
    CREATE TABLE IF NOT EXISTS orders (
      id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      item text NOT NULL,
      quantity integer NOT NULL,
      import_job_id uuid,
      imported_at timestamptz,
      imported_by text,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    -- one row per run of the import job: how often it ran, and where
    CREATE TABLE IF NOT EXISTS order_imports (
      id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      order_id integer NOT NULL REFERENCES orders (id),
      job_id uuid NOT NULL,
      attempt integer NOT NULL,
      ran_on text NOT NULL,
      at timestamptz NOT NULL DEFAULT now()
    );`);
}
