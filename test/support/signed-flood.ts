// A stranger's flood of signed-looking requests, run as its own process (so the test process that
// measures the honest traffic and reads the apps' logs is not the one busy with the attack): each
// socket sends the headers of an 8 MiB message whose signature is 32 random bytes (half also send
// a forged header signature), no body, and is opened again as soon as it is closed.
// Usage: node signed-flood.ts <sockets> <host:port/path=purpose>... ; prints the answers' counts
// as one JSON line on SIGTERM.
import { randomBytes, randomUUID } from 'node:crypto';
import { connect } from 'node:net';

const [socketsArg, ...targets] = process.argv.slice(2);
const sockets = Number(socketsArg);
const answers: Record<string, number> = {};
let stopped = false;

function one(port: number, path: string, purpose: string, withHeaderSignature: boolean): void {
  if (stopped) return;
  const socket = connect(port, '127.0.0.1');
  let head = '';
  socket.on('connect', () => {
    const headers = [
      `POST ${path} HTTP/1.1`,
      'host: 127.0.0.1',
      'content-type: application/json',
      'content-length: 8388608',
      `webhook-id: ${purpose}_${randomUUID()}`,
      `webhook-timestamp: ${Math.floor(Date.now() / 1000)}`,
      `webhook-signature: v1,${randomBytes(32).toString('base64')}`,
      ...(withHeaderSignature ? [`jobgate-header-signature: v1,${randomBytes(32).toString('base64')}`] : []),
    ];
    socket.write(`${headers.join('\r\n')}\r\n\r\n`);
  });
  socket.on('data', (d) => {
    head += d;
    const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
    if (m && head.includes('\r\n\r\n')) {
      const key = `${withHeaderSignature ? 'header' : 'body-only'} ${m[1]}`;
      answers[key] = (answers[key] ?? 0) + 1;
      socket.destroy();
    }
  });
  socket.on('error', () => {});
  socket.on('close', () => setTimeout(() => one(port, path, purpose, withHeaderSignature), 50));
}

for (const target of targets) {
  const [, port, path, purpose] = /^[^:]+:(\d+)(\/[^=]*)=(\w+)$/.exec(target)!;
  for (let i = 0; i < sockets; i++) one(Number(port), path!, purpose!, i % 2 === 0);
}
process.on('SIGTERM', () => {
  stopped = true;
  process.stdout.write(`${JSON.stringify(answers)}\n`, () => process.exit(0));
});
process.stdout.write('ready\n');
