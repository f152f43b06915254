// The app's jobs, imported by both services: the server enqueues them, the fetcher runs the
// `runsOnFetcher` ones (the server would run the others itself).
import { setTimeout as sleep } from 'node:timers/promises';
import { defineJob, PermanentJobError } from 'jobgate';
import { z } from 'zod';
import { pool } from './db.ts';

/** Pulls an order's lines from the (pretend) supplier and marks the order imported. Heavy, so on the fetcher. */
export const importOrder = defineJob({
  name: 'orders.import',
  runsOnFetcher: true,
  payload: z.object({ orderId: z.number().int().positive() }),
  retry: { limit: 3, delaySeconds: 5, backoff: true },
  timeoutSeconds: 120,
  async run({ orderId }, ctx) {
    await ctx.progress(10, 'reading the order');
    const { rows } = await pool.query<{ item: string; quantity: number }>('SELECT item, quantity FROM orders WHERE id = $1', [orderId]);
    const order = rows[0];
    // no such order: retrying will not help
    if (!order) throw new PermanentJobError(`order ${orderId} does not exist`);

    // the heavy part (a supplier's API, a PDF, …): three steps here, each abortable on shutdown
    for (const [step, percent] of [['asking the supplier', 30], ['matching the lines', 60], ['booking the stock', 90]] as const) {
      await sleep(100, undefined, { signal: ctx.signal });
      await ctx.progress(percent, step);
    }

    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('INSERT INTO order_imports (order_id, job_id, attempt, ran_on) VALUES ($1, $2, $3, $4)', [orderId, ctx.job.id, ctx.job.attempt, ctx.job.ranOn]);
      await client.query('UPDATE orders SET imported_at = now(), imported_by = $2 WHERE id = $1', [orderId, ctx.job.ranOn]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
    ctx.logger.info({ orderId, item: order.item }, 'order imported');
    await ctx.progress(100, 'imported');
    return { orderId, importedBy: ctx.job.ranOn };
  },
});

export const jobs = [importOrder];
