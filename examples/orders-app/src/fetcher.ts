// The fetcher: a service of its own that runs the heavy (`runsOnFetcher`) jobs the server forwards.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createFetcher } from 'jobgate';
import { config } from './config.ts';
import { pool } from './db.ts';
import { jobs } from './jobs.ts';

const fetcher = await createFetcher({
  databaseUrl: config.DATABASE_URL,
  schema: config.FETCHER_SCHEMA,
  bossSchema: config.FETCHER_BOSS_SCHEMA,
  jobs,
  // where the server mounted jobgate's routers
  main: { url: config.MAIN_URL, secret: config.SHARED_SECRET },
});

const app = express();
app.disable('x-powered-by');
// the signed /v1/* API the server forwards to, and /healthz (the platform's health check and the
// server's wake-up probe; 503 while stopping)
app.use(fetcher.router);

await fetcher.start();
const server = app.listen(config.PORT ?? 3001, config.HOST);
await once(server, 'listening');
const { port } = server.address() as AddressInfo;
console.log(`orders-app fetcher listening on http://${config.HOST}:${port}`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, async () => {
    setTimeout(() => process.exit(1), 30_000).unref();
    await fetcher.stop({ before: new Promise((resolve) => server.close(resolve)) });
    await pool.end();
    console.log('orders-app fetcher stopped');
  });
}
