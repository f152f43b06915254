// The web app ("main" in jobgate's words): takes orders, enqueues their import in the same
// transaction, and shows the jobs admin under /ops/jobs to its staff.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { createMain } from 'jobgate';
import { z } from 'zod';
import { signIn, staffOnly } from './auth.ts';
import { config } from './config.ts';
import { createTables, pool, type Order } from './db.ts';
import { importOrder, jobs } from './jobs.ts';

await createTables();

const jobgate = await createMain({
  databaseUrl: config.DATABASE_URL,
  pool, // jobgate's tables through the app's pool (jobgate never ends it)
  schema: config.MAIN_SCHEMA,
  bossSchema: config.MAIN_BOSS_SCHEMA,
  jobs,
  fetcher: { url: config.FETCHER_URL, secret: config.SHARED_SECRET },
  admin: { authorize: staffOnly },
});

const app = express();
app.disable('x-powered-by');

// jobgate under /ops/jobs, before any body parser of the app's (the signed routes check the raw
// body). The fetcher posts its signed job events and claims to the internal routes: they must not
// be behind the sign-in. The admin pages and their API are.
app.use('/ops/jobs', jobgate.routers.internal);
app.use('/ops/jobs', signIn, jobgate.routers.admin);

app.use(express.json());

const NewOrder = z.object({
  item: z.string().min(1).max(200),
  quantity: z.number().int().positive(),
  /** Demo of a rollback: fail after the job was enqueued; neither the order nor its job is kept. */
  fail: z.boolean().optional(),
});

app.post('/orders', async (req, res) => {
  const parsed = NewOrder.safeParse(req.body);
  if (!parsed.success) {
    res.status(422).json({ error: 'invalid order', issues: parsed.error.issues });
    return;
  }
  const { item, quantity, fail } = parsed.data;
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ id: number }>('INSERT INTO orders (item, quantity) VALUES ($1, $2) RETURNING id', [item, quantity]);
    const orderId = rows[0]!.id;
    // `db: client`: the job is written in this transaction, so it exists if and only if the order does
    const { job } = await jobgate.performLater(importOrder, { orderId }, { db: client });
    await client.query('UPDATE orders SET import_job_id = $2 WHERE id = $1', [orderId, job.id]);
    if (fail) throw new Error('failing on purpose after enqueueing (rollback demo)');
    await client.query('COMMIT');
    res.status(201).location(`/orders/${orderId}`).json({ id: orderId, jobId: job.id });
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
});

app.get('/orders/:id', async (req, res) => {
  const id = Number(req.params.id);
  const { rows } = Number.isSafeInteger(id) ? await pool.query<Order>('SELECT * FROM orders WHERE id = $1', [id]) : { rows: [] };
  const order = rows[0];
  if (!order) {
    res.status(404).json({ error: 'no such order' });
    return;
  }
  // the import job with its state, progress and executions
  const job = order.import_job_id ? await jobgate.getJob(order.import_job_id) : null;
  res.json({ ...order, job });
});

app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
  console.error('orders-app:', err.message);
  res.status(500).json({ error: err.message });
});

await jobgate.start();
const server = app.listen(config.PORT ?? 3000, config.HOST);
await once(server, 'listening');
const { port } = server.address() as AddressInfo;
console.log(`orders-app server listening on http://${config.HOST}:${port}`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, async () => {
    setTimeout(() => process.exit(1), 30_000).unref();
    // requests in flight finish before jobgate closes its pools; then the app's own pool
    await jobgate.stop({ before: new Promise((resolve) => server.close(resolve)) });
    await pool.end();
    console.log('orders-app server stopped');
  });
}
