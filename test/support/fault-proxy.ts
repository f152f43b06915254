// A loopback TCP proxy that injects network faults between two of our processes (or an app and
// PostgreSQL). No Toxiproxy here, and `tc netem` needs CAP_NET_ADMIN (../shared/FAULTS.md).
import { createServer, connect, type Server, type Socket } from 'node:net';

export type FaultMode =
  | { kind: 'pass' }
  /** Holds every chunk, both ways, for `ms` before passing it on. */
  | { kind: 'delay'; ms: number }
  /** Accepts connections and never forwards a byte (a half-open peer). */
  | { kind: 'blackhole' }
  /** Forwards requests, destroys the connection before the first response byte. */
  | { kind: 'drop-response' }
  /** Resets the connection after `bytes` have gone upstream. */
  | { kind: 'reset-after'; bytes: number }
  /** Holds every chunk, both ways, until the clock reaches `until` (a platform holding requests while the app boots). */
  | { kind: 'hold'; until: number }
  /**
   * Forwards every request; of the requests whose first bytes are `match` (e.g. "POST /v1/jobs "),
   * the 1st, (1 + every)th, … lose their response: the connection is destroyed before it comes back.
   */
  | { kind: 'drop-response-of'; match: string; every: number };

export interface FaultProxy {
  port: number;
  url(scheme?: string, path?: string): string;
  setMode(mode: FaultMode): void;
  /** Stops listening, so new connections are refused; `resume` listens again on the same port. */
  refuse(): Promise<void>;
  resume(): Promise<void>;
  /** Drops every open connection. */
  cut(): void;
  close(): Promise<void>;
  connections: number;
  /** Requests seen by 'drop-response-of', and how many of them lost their response. */
  matched: { requests: number; dropped: number };
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let mode: FaultMode = { kind: 'pass' };
  const sockets = new Set<Socket>();
  let server: Server;
  let port = 0;
  const matched = { requests: 0, dropped: 0 };

  function onConnection(client: Socket): void {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (mode.kind === 'blackhole') return; // never forwarded, never answered
    const upstream = connect(target.port, target.host);
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    let sentUp = 0;
    let dropNextResponse = false;
    const pipe = (from: Socket, to: Socket, upward: boolean) => {
      from.on('data', (chunk: Buffer) => {
        const current = mode;
        if (upward && current.kind === 'drop-response-of' && chunk.subarray(0, current.match.length).toString('latin1') === current.match) {
          if (matched.requests++ % current.every === 0) dropNextResponse = true;
        }
        if (!upward && (current.kind === 'drop-response' || (current.kind === 'drop-response-of' && dropNextResponse))) {
          if (current.kind === 'drop-response-of') matched.dropped++;
          client.destroy();
          upstream.destroy();
          return;
        }
        if (upward && current.kind === 'reset-after') {
          sentUp += chunk.length;
          if (sentUp > current.bytes) {
            client.resetAndDestroy();
            upstream.destroy();
            return;
          }
        }
        const holdMs = current.kind === 'delay' ? current.ms : current.kind === 'hold' ? current.until - Date.now() : 0;
        if (holdMs > 0) {
          from.pause();
          setTimeout(() => {
            if (!to.destroyed) to.write(chunk);
            from.resume();
          }, holdMs);
        } else if (!to.destroyed) {
          to.write(chunk);
        }
      });
    };
    pipe(client, upstream, true);
    pipe(upstream, client, false);
  }

  async function listen(): Promise<void> {
    server = createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    port = typeof address === 'object' && address ? address.port : port;
  }
  await listen();

  return {
    get port() {
      return port;
    },
    get connections() {
      return sockets.size;
    },
    matched,
    url: (scheme = 'http', path = '') => `${scheme}://127.0.0.1:${port}${path}`,
    setMode(next) {
      mode = next;
    },
    async refuse() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
    resume: listen,
    cut() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
