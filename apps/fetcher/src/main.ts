// The fetcher's entry point. So far it only serves its health check and status; the v1 job API,
// runner and memory guard are being built (issue 4).
import { readFileSync } from 'node:fs';
import express from 'express';
import { z } from 'zod';
import { createLogger, methodNotAllowed, notFound, onShutdownSignal, problemErrorHandler, requestContext } from '@jobgate/runtime';

const Env = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(3001),
  HOST: z.string().min(1).default('0.0.0.0'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
const parsed = Env.safeParse(Object.fromEntries(Object.entries(process.env).filter(([, v]) => v)));
if (!parsed.success) {
  process.stderr.write(`jobgate fetcher: invalid configuration:\n${parsed.error.issues.map((i) => `  - ${i.path.join('.')}: ${i.message}`).join('\n')}\n`);
  process.exit(1);
}
const config = parsed.data;
const logger = createLogger({ level: config.LOG_LEVEL, name: 'fetcher' });
const startedAt = Date.now();
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
let draining = false;

const app = express();
app.disable('x-powered-by');
app.use(requestContext(logger));
app
  .route('/healthz')
  .get((_req, res) => {
    if (draining) res.status(503).json({ status: 'stopping' });
    else res.json({ status: 'ok' });
  })
  .all(methodNotAllowed(['GET']));
app
  .route('/v1/status')
  .get((_req, res) => {
    const memory = process.memoryUsage();
    res.json({
      status: draining ? 'stopping' : 'ok',
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      memory: { rssMb: Math.round(memory.rss / 2 ** 20), heapUsedMb: Math.round(memory.heapUsed / 2 ** 20) },
    });
  })
  .all(methodNotAllowed(['GET']));
app.use(notFound());
app.use(problemErrorHandler());

const server = app.listen(config.PORT, config.HOST, () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  logger.info({ port, url: `http://127.0.0.1:${port}` }, 'listening');
});

onShutdownSignal(logger, async () => {
  draining = true;
  await new Promise<void>((done) => {
    server.close(() => done());
    server.closeIdleConnections();
  });
});
