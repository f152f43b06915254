import { createServer, type RequestListener, type Server } from 'node:http';
import type { Logger } from './logger.ts';

export interface Listening {
  server: Server;
  port: number;
  /** Stops accepting connections, lets in-flight requests finish (at most `graceMs`), then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Listens with timeouts that hold: a client that sends its request slower than `requestTimeoutMs`
 * gets 408. Node checks for that only every connectionsCheckingInterval (30 s by default), so the
 * check runs every second here (FAULTS.md row 29).
 */
export async function listen(app: RequestListener, options: { port: number; host: string; requestTimeoutMs: number }, logger: Logger): Promise<Listening> {
  const server = createServer(
    {
      requestTimeout: options.requestTimeoutMs,
      headersTimeout: Math.min(10_000, options.requestTimeoutMs),
      connectionsCheckingInterval: 1_000,
    },
    app,
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  logger.info({ port, url: `http://127.0.0.1:${port}` }, 'listening');
  return {
    server,
    port,
    async close(graceMs = 5_000) {
      const closed = new Promise<void>((done) => server.close(() => done()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}
