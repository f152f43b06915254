// Runs the `jobgate` CLI as a real process against a test database.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { TEST_JOBS_MODULE, TEST_SHARED_SECRET } from './apps.ts';

const BIN = join(import.meta.dirname, '../../apps/main/bin/jobgate.js');

export function runCli(databaseUrl: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: databaseUrl, JOBGATE_JOB_MODULES: TEST_JOBS_MODULE, JOBGATE_DEMO_JOBS: 'true', FETCHER_SHARED_SECRET: TEST_SHARED_SECRET, JOBGATE_POLL_INTERVAL_SECONDS: '0.5', LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
