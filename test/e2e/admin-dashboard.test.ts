// The admin dashboard in a real browser (the Chromium that @sparticuz/chromium ships in its npm
// package, driven by playwright-core; CHROMIUM_PATH for another) against both apps running for real
// (issue 6). Each test saves a screenshot under test-artifacts/screenshots/.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../support/browser.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { ADMIN_PASSWORD, admin, call, enqueue, startPair, states, type Pair } from '../support/gateway.ts';
import { waitFor } from '../support/wait.ts';

const SHOTS = join(import.meta.dirname, '../../test-artifacts/screenshots');

let db: TestDatabase;
let pair: Pair;
let browser: Browser;
let context: BrowserContext;
let page: Page;

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  db = await createTestDatabase();
  pair = await startPair(db);
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  // confirm steps are accepted; prompts with their suggested answer
  page.on('dialog', (d) => void d.accept(d.type() === 'prompt' ? d.defaultValue() : undefined));
});
afterAll(async () => {
  await browser?.close();
  await pair?.stop();
  await db?.drop();
});

const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
const text = (selector: string) => page.locator(selector).innerText();
/** Waits until the text of `selector` (its first match) passes `check`, as the page updates itself. */
const see = (selector: string, check: (text: string) => boolean, timeoutMs = 10_000, on: Page = page) =>
  waitFor(`${selector} to update`, async () => {
    const el = on.locator(selector).first();
    return (await el.count()) > 0 && check(await el.textContent() ?? '');
  }, { timeoutMs, intervalMs: 100 });

describe('admin dashboard in Chromium', () => {
  it('logs in (a wrong password first) and shows the fetcher awake with memory figures', async () => {
    await page.goto(`${pair.main.url}/admin/fetcher_service`);
    expect(page.url()).toContain('/admin/login');
    await page.fill('input[name=password]', 'not-the-password');
    await page.click('button[type=submit]');
    expect(await text('.error')).toContain('Wrong password');
    await shot('login');
    await page.fill('input[name=password]', ADMIN_PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForURL('**/admin/fetcher_service');
    await see('#fetcher-state', (t) => t === 'awake');
    await see('#memory-text', (t) => /MB of \d+ MB/.test(t));
    expect(await text('#intake')).toBe('open');
    expect(await page.locator('#override-badge').isVisible()).toBe(false);
    // the Waiting table fits its card: no column is cut off or scrolled away
    const cut = await page.locator('#queues').evaluate((t) => t.parentElement!.scrollWidth - t.parentElement!.clientWidth);
    expect(cut).toBeLessThanOrEqual(0);
    const cookie = (await context.cookies()).find((c) => c.name === 'jobgate_admin')!;
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/admin' });
    await shot('fetcher-service');
  });

  it('shows the fetcher down (and being woken) after a kill -9 with jobs waiting, without a reload', async () => {
    pair.fetcher!.kill('SIGKILL');
    await pair.fetcher!.exited;
    const killedAt = Date.now();
    const waiting = await Promise.all([1, 2].map(() => enqueue(pair.main, 'test.remote', {})));
    await see('#fetcher-state', (t) => t === 'down', 30_000);
    await see('#fetcher-waking', (t) => t.startsWith('waking since'), 30_000);
    expect(await page.locator('#fetcher-waking').isVisible()).toBe(true);
    const seconds = (Date.now() - killedAt) / 1000;
    await shot('fetcher-down');
    console.log(`dashboard: fetcher shown down and waking ${seconds.toFixed(1)} s after kill -9, no reload`);
    await pair.startFetcher();
    await see('#fetcher-state', (t) => t === 'awake', 30_000);
    await waitFor('the waiting jobs done', async () => (await states(db, waiting)).completed === 2, { timeoutMs: 20_000 });
    // the page's next live update (not a reload) hides it: the jobs may finish before that update comes
    await waitFor('the waking notice gone without a reload', async () => !(await page.locator('#fetcher-waking').isVisible()), { timeoutMs: 30_000, intervalMs: 100 });
  });

  it('renders the real state into the HTML itself (no script needed): curl sees the state, the override, the jobs and a job', async () => {
    const basic = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` };
    const get = async (path: string) => {
      const r = await fetch(`${pair.main.url}${path}`, { headers: basic });
      expect(r.status).toBe(200);
      return r.text();
    };
    const service = await get('/admin/fetcher_service');
    expect(service).toMatch(/<span id="fetcher-state" class="badge awake">awake<\/span>/);
    expect(service).toMatch(/<p id="override-state">Off: fetcher jobs go to the fetcher\.<\/p>/);
    expect(service).toMatch(/<p id="memory-text">RSS \d+ MB of \d+ MB/);
    expect(service).toMatch(/<dd id="intake">open<\/dd>/);
    expect(service).not.toContain('…');
    const id = await enqueue(pair.main, 'test.record', { label: 'server-rendered <b>' });
    await waitFor('done', async () => (await states(db, [id])).completed === 1);
    const list = await get('/admin/jobs?name=test.record');
    expect(list).toContain(`<tr data-job-id="${id}">`);
    expect(list).toContain('<option value="demo.heavy">demo.heavy (fetcher)</option>');
    const one = await get(`/admin/jobs/${id}`);
    expect(one).toMatch(/<span id="job-state" class="badge completed">completed<\/span>/);
    expect(one).toContain('server-rendered &#60;b&#62;');
    expect(one).toMatch(/<tbody id="executions-body"><tr><td>1<\/td><td>main<\/td>/);
    expect((await fetch(`${pair.main.url}/admin/jobs/00000000-0000-4000-8000-000000000000`, { headers: basic })).status).toBe(404);
    expect((await fetch(`${pair.main.url}/admin/jobs?state=nope`, { headers: basic })).status).toBe(422);
    // a browser with scripts off (logged in with the same session) sees the same
    const noScript = await browser.newContext({ javaScriptEnabled: false, storageState: await context.storageState() });
    const plain = await noScript.newPage();
    await plain.goto(`${pair.main.url}/admin/fetcher_service`);
    expect(await plain.locator('#fetcher-state').innerText()).toBe('awake');
    await plain.goto(`${pair.main.url}/admin/jobs/${id}`);
    expect(await plain.locator('#job-state').innerText()).toBe('completed');
    await plain.screenshot({ path: join(SHOTS, 'job-no-script.png'), fullPage: true });
    await noScript.close();
  });

  it('switches the override on with a reason (confirm step) and shows the audit entry; then off', async () => {
    await page.fill('#override-form input[name=reason]', 'browser test: fetcher deploy');
    await page.fill('#override-form input[name=expiresInMinutes]', '30');
    await page.click('#override-form button[type=submit]');
    await see('#override-audit tbody', (t) => t.includes('browser test: fetcher deploy'));
    expect(await text('#override-state')).toContain('ON since');
    expect(await page.locator('#override-badge').isVisible()).toBe(true);
    const row = await text('#override-audit tbody tr:first-child');
    expect(row).toContain('admin (dashboard');
    expect(row).toContain('off → on');
    await shot('override-on');
    await page.click('#override-off'); // the prompt is accepted with its default reason
    await see('#override-state', (t) => t.startsWith('Off'));
    expect((await admin(pair.main, 'GET', '/override')).json.audit.map((a: any) => a.action)).toEqual(['off', 'on']);
  });

  it('runs demo.heavy with the override checkbox and sees it complete on main', async () => {
    await page.goto(`${pair.main.url}/admin/jobs`);
    await see('#run-name', (t) => t.includes('demo.heavy'));
    await page.selectOption('#run-name', 'demo.heavy');
    await page.fill('#run-payload', '{"sleepMs": 500, "progressSteps": 2}');
    await page.check('#run-on-main');
    await page.click('#run-form button[type=submit]');
    await page.waitForURL(/\/admin\/jobs\/[0-9a-f-]{36}$/);
    await see('#job-state', (t) => t === 'completed', 20_000);
    expect(await text('#route-reason')).toContain('per-run override');
    expect(await text('#executions tbody')).toContain('main');
    await shot('job-run-on-main');
  });

  it('shows a progress bar that moves on a job with progressSteps', async () => {
    // Each step holds 4 s, twice the page's 2 s refresh: a refresh slowed by a busy machine still sees
    // most of them (at 2 s a step, a run on a loaded 2-core CI machine saw one of the three).
    const id = await enqueue(pair.main, 'demo.heavy', { sleepMs: 16_000, progressSteps: 4 });
    await page.goto(`${pair.main.url}/admin/jobs/${id}`);
    const widths = new Set<string>();
    let shotTaken = false;
    await waitFor('completed', async () => {
      const width = `${(await page.locator('#progress-bar').getAttribute('value')) ?? '0'}%`;
      widths.add(width);
      if (!shotTaken && width === '50%') {
        shotTaken = true;
        await shot('job-progress');
      }
      return (await text('#job-state')) === 'completed';
    }, { timeoutMs: 60_000, intervalMs: 200 });
    const between = [...widths].filter((w) => w !== '0%' && w !== '100%');
    console.log(`dashboard: progress bar widths seen ${[...widths].join(', ')}`);
    expect(between.length).toBeGreaterThanOrEqual(2);
    expect(await text('#executions tbody')).toContain('fetcher');
  });

  it('retries a failed job from the jobs page', async () => {
    const failing = await enqueue(pair.main, 'test.record', { failAttempts: 5, label: 'fails' });
    await waitFor('failed', async () => (await states(db, [failing])).failed === 1, { timeoutMs: 20_000 });
    await page.goto(`${pair.main.url}/admin/jobs?state=failed`);
    const row = page.locator(`tr[data-job-id="${failing}"]`);
    await row.locator('button.retry').click();
    await see('#flash', (t) => t.startsWith('Retried'));
    const retried = (await admin(pair.main, 'GET', '/audit')).json.audit.find((a: any) => a.action === 'job.retry' && a.target === failing);
    expect(retried.detail.newJobId).toEqual(expect.any(String));
    expect((await call(pair.main.url, 'GET', `/api/jobs/${retried.detail.newJobId}`)).json).toMatchObject({ name: 'test.record', payload: { failAttempts: 5, label: 'fails' } });
    await shot('jobs-failed');
  });

  it('filters the jobs list by a payload field', async () => {
    const wanted = await enqueue(pair.main, 'test.record', { label: '737628064502' });
    await enqueue(pair.main, 'test.record', { label: '000000000000' });
    await page.goto(`${pair.main.url}/admin/jobs`);
    await page.fill('#filters input[name=payload]', 'label=737628064502');
    await page.click('#filters button[type=submit]');
    await page.waitForURL(/payload=label%3D737628064502/);
    await see('#jobs tbody tr[data-job-id]', () => true);
    const ids = await page.locator('#jobs tbody tr[data-job-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job-id')));
    expect(ids).toEqual([wanted]);
    await shot('jobs-filtered');
  });

  it('lists cron schedules with their next run and runs one now', async () => {
    await page.goto(`${pair.main.url}/admin/cron`);
    await see('#cron tbody', (t) => t.includes('maintenance.cleanup'));
    expect(await text('#cron tbody')).toContain('0 2 * * *');
    await page.locator('#cron tbody button').first().click();
    await see('#flash', (t) => t.startsWith('Enqueued'));
    await shot('cron');
  });

  it('the overview shows finished jobs per minute, waits and what runs now; pauses and resumes a job', async () => {
    const done = await Promise.all([...Array.from({ length: 6 }, () => enqueue(pair.main, 'demo.light', {})), enqueue(pair.main, 'demo.light', { failPermanently: true })]);
    await waitFor('demo.light finished', async () => { const s = await states(db, done); return s.completed === 6 && s.failed === 1; }, { timeoutMs: 30_000 });
    // the rollup is written once a second: the overview counts them within a few
    await waitFor('the overview counts them', async () => (await admin(pair.main, 'GET', '/overview')).json.names.some((n: { name: string; side: string; completed: number; failed: number }) => n.name === 'demo.light' && n.side === 'main' && n.completed >= 6 && n.failed === 1), { timeoutMs: 10_000 });
    await page.goto(`${pair.main.url}/admin`);
    await page.waitForURL('**/admin/overview');
    // the first paint is the truth: the row, its chart with completed and failed bars, its counts
    const demo = page.locator('#overview tbody tr', { hasText: 'demo.light' });
    await see('#overview tbody', (t) => t.includes('demo.light'));
    expect(await demo.locator('svg.chart rect.ok').count()).toBeGreaterThan(0);
    expect(await demo.locator('svg.chart rect.bad').count()).toBeGreaterThan(0);
    expect(await demo.locator('td').nth(4).innerText()).toBe('1');
    expect(await text('#ov-fetcher')).toContain('awake');
    await page.locator('#pause-name').selectOption('demo.heavy');
    await page.locator('#pause-form input[name="reason"]').fill('provider API is down');
    await page.locator('#pause-form button[type="submit"]').click();
    await see('#flash', (t) => t.startsWith('Paused demo.heavy'));
    await see('#ov-pauses', (t) => t.includes('demo.heavy') && t.includes('provider API is down'));
    await see('#overview tbody tr:has-text("demo.heavy")', (t) => t.includes('paused'));
    expect((await admin(pair.main, 'GET', '/pauses')).json.pauses.map((p: { name: string }) => p.name)).toEqual(['demo.heavy']);
    await shot('overview');
    await page.locator('#ov-pauses button[data-action="resume"]').click();
    await see('#ov-pauses', (t) => t.includes('nothing is paused'));
    expect((await admin(pair.main, 'GET', '/pauses')).json.pauses).toEqual([]);
    // the day's chart reads the same rollup in quarter hours
    await page.locator('#window-day').click();
    await see('#ov-window', (t) => t.includes('15 minutes'));
  });

  it('a batch page shows its progress, its failed jobs and its callbacks, and retries the failed ones', async () => {
    const parent = await enqueue(pair.main, 'demo.fanout', { children: 12, route: 'main', failEvery: 4 });
    const batchId = await waitFor('the batch', async () => (await call(pair.main.url, 'GET', `/api/jobs/${parent}`)).json.batchId as string | undefined, { timeoutMs: 20_000 });
    await waitFor('the batch finished', async () => (await call(pair.main.url, 'GET', `/api/batches/${batchId}`)).json.callbacks.length === 1, { timeoutMs: 30_000 });
    await page.goto(`${pair.main.url}/admin/jobs/${parent}`);
    await page.locator(`#job-batch a[href="batches/${batchId}"]`).click();
    await page.waitForURL(`**/admin/batches/${batchId}`);
    expect(await text('#batch-state')).toBe('finished');
    expect(await text('#batch-progress-text')).toContain('12 of 12 ended: 9 completed, 3 failed');
    expect(await page.locator('#batch-progress').getAttribute('value')).toBe('12');
    expect(await page.locator('#batch-failed tr').count()).toBe(3);
    expect(await text('#batch-callbacks')).toContain('finish');
    await shot('batch');
    await page.locator('#batch-retry').click();
    await see('#flash', (t) => t.startsWith('Retried 3 failed jobs'));
    // they fail again (failPermanently): the batch finishes again, and its callback runs again
    await see('#batch-progress-text', (t) => t.includes('12 of 12 ended') , 20_000);
    await waitFor('a second finish', async () => (await call(pair.main.url, 'GET', `/api/batches/${batchId}`)).json.callbacks.length === 1 && (await db.pool.query(`SELECT count(*)::int AS n FROM public.main_jobs WHERE name = 'demo.batch-done' AND payload->'batch'->>'id' = $1`, [batchId])).rows[0].n === 2, { timeoutMs: 30_000 });
  });

  it('the schedule editor creates, edits, disables and deletes a schedule', async () => {
    await page.goto(`${pair.main.url}/admin/cron`);
    const form = page.locator('#schedule-form');
    await form.locator('select[name="name"]').selectOption('demo.light');
    await form.locator('input[name="schedule"]').fill('every morning');
    await form.locator('button[type="submit"]').click();
    await see('#flash', (t) => t.startsWith('schedule:'));
    await form.locator('input[name="schedule"]').fill('0 6 * * 1-5');
    await form.locator('input[name="timeZone"]').fill('Europe/Berlin');
    await form.locator('textarea[name="payload"]').fill('{"sleepMs": 10}');
    await form.locator('button[type="submit"]').click();
    await see('#flash', (t) => t.startsWith('Saved: demo.light at 0 6 * * 1-5'));
    const mine = page.locator('#cron tbody tr', { hasText: '0 6 * * 1-5' });
    await see('#cron tbody', (t) => t.includes('0 6 * * 1-5') && t.includes('Europe/Berlin'));
    expect(await mine.locator('ol.runs').first().locator('li').count()).toBe(5);
    await shot('schedule-editor');
    await mine.locator('button[data-action="edit-schedule"]').click();
    expect(await form.locator('input[name="schedule"]').inputValue()).toBe('0 6 * * 1-5');
    await form.locator('input[name="schedule"]').fill('30 7 * * *');
    await form.locator('button[type="submit"]').click();
    const edited = page.locator('#cron tbody tr', { hasText: '30 7 * * *' });
    await see('#cron tbody', (t) => t.includes('30 7 * * *') && !t.includes('0 6 * * 1-5'));
    await edited.locator('button[data-action="toggle-schedule"]').click();
    await see('#cron tbody tr:has-text("30 7 * * *")', (t) => t.includes('disabled'));
    const list = (await admin(pair.main, 'GET', '/schedules')).json.schedules.filter((s: { source: string }) => s.source === 'runtime');
    expect(list).toMatchObject([{ name: 'demo.light', schedule: '30 7 * * *', timeZone: 'Europe/Berlin', payload: { sleepMs: 10 }, enabled: false, nextRuns: [] }]);
    await edited.locator('button[data-action="delete-schedule"]').click();
    await see('#cron tbody', (t) => !t.includes('30 7 * * *'));
    expect((await admin(pair.main, 'GET', '/schedules')).json.schedules.filter((s: { source: string }) => s.source === 'runtime')).toEqual([]);
  });

  it('the jobs list and the overview show new jobs by themselves, without a reload', async () => {
    // a mark on the window: a reload would lose it
    const stillSamePage = async () => (await page.evaluate('window.__notReloaded === true')) === true;
    await page.goto(`${pair.main.url}/admin/jobs?name=test.record&payload=${encodeURIComponent('label=live-list')}`);
    await page.evaluate('window.__notReloaded = true');
    expect(await page.locator('#jobs tbody tr[data-job-id]').count()).toBe(0);
    const id = await enqueue(pair.main, 'test.record', { label: 'live-list' });
    await see(`#jobs tbody tr[data-job-id="${id}"]`, (t) => t.includes('completed'), 20_000);
    expect(await stillSamePage()).toBe(true);

    await page.goto(`${pair.main.url}/admin/overview`);
    await page.evaluate('window.__notReloaded = true');
    const row = '#overview tbody tr:has(a[href="jobs?name=test.record"])';
    const before = Number(await page.locator(`${row} td:nth-child(4)`).innerText());
    const sent = await enqueue(pair.main, 'test.record', { label: 'live-overview' });
    await waitFor('done', async () => (await states(db, [sent])).completed === 1, { timeoutMs: 20_000 });
    await see(`${row} td:nth-child(4)`, (t) => Number(t) === before + 1, 20_000);
    expect(await stillSamePage()).toBe(true);
  });

  it('is readable on a phone', async () => {
    const phone = await context.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${pair.main.url}/admin/jobs`);
    await see('#jobs tbody tr', () => true, 10_000, phone);
    const overflow = await phone.evaluate('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    await phone.screenshot({ path: join(SHOTS, 'jobs-phone.png'), fullPage: true });
    await phone.close();
  });
});

describe('acting on jobs through the admin API', () => {
  it('cancels a queued job (it never runs), a running main job (its handler stops), in bulk by payload; not a finished one', async () => {
    const later = (await admin(pair.main, 'POST', '/jobs/test.record/run', { payload: { label: 'later' }, delaySeconds: 60 })).json.id;
    const running = await enqueue(pair.main, 'test.record', { sleepMs: 30_000, label: 'running' });
    await waitFor('running', async () => (await states(db, [running])).active === 1, { timeoutMs: 20_000 });
    expect((await admin(pair.main, 'POST', `/jobs/${later}/cancel`)).json).toMatchObject({ state: 'cancelled', error: { code: 'JG_CANCELLED' } });
    expect((await admin(pair.main, 'POST', `/jobs/${running}/cancel`)).json.state).toBe('cancelled');
    // the runner notices at its next heartbeat (a quarter of the claim) and aborts the handler
    await waitFor('handler aborted', async () => (await db.pool.query(`SELECT 1 FROM public.test_events WHERE job_id = $1 AND event = 'aborted'`, [running])).rowCount === 1, { timeoutMs: 20_000 });
    const ranFor = await waitFor('attempt recorded as cancelled', async () => {
      const j = (await admin(pair.main, 'GET', `/jobs/${running}`)).json;
      return j.executions[0]?.outcome === 'failed' && j;
    });
    expect(ranFor).toMatchObject({ state: 'cancelled', executions: [{ attempt: 1, outcome: 'failed', error: { code: 'JG_CANCELLED' } }] });
    const done = await enqueue(pair.main, 'test.record', {});
    await waitFor('done', async () => (await states(db, [done])).completed === 1);
    expect((await admin(pair.main, 'POST', `/jobs/${done}/cancel`)).status).toBe(409);
    const batch = await Promise.all([1, 2, 3].map(() => admin(pair.main, 'POST', '/jobs/test.record/run', { payload: { label: 'bulk-cancel' }, delaySeconds: 60 })));
    const bulk = await admin(pair.main, 'POST', '/jobs/bulk', { action: 'cancel', filter: { payload: 'label=bulk-cancel' } });
    expect(bulk.json).toMatchObject({ action: 'cancel', matched: 3, done: 3, truncated: false });
    expect((await states(db, batch.map((b) => b.json.id))).cancelled).toBe(3);
    expect(await db.pool.query(`SELECT 1 FROM public.test_events WHERE job_id = ANY($1::uuid[])`, [[later, ...batch.map((b) => b.json.id)]]).then((r) => r.rowCount)).toBe(0);
    // the cancelled running job was not retried by the queue
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM public.test_events WHERE job_id = $1 AND event = 'start'`, [running])).rows[0].n).toBe(1);
  });

  it('bulk actions need a filter, skip what they cannot act on, and retry a job only once', async () => {
    const none = await admin(pair.main, 'POST', '/jobs/bulk', { action: 'cancel', filter: {} });
    expect(none.status).toBe(422);
    expect(none.json.errors[0].path).toBe('filter');
    const wrongState = await admin(pair.main, 'POST', '/jobs/bulk', { action: 'retry', filter: { state: 'completed' } });
    expect(wrongState.json.errors[0].path).toBe('filter.state');
    const failing = await Promise.all([1, 2].map(() => enqueue(pair.main, 'test.record', { failAttempts: 9, label: 'bulk-retry' })));
    await waitFor('both failed', async () => (await states(db, failing)).failed === 2, { timeoutMs: 20_000 });
    const first = (await admin(pair.main, 'POST', '/jobs/bulk', { action: 'retry', filter: { payload: 'label=bulk-retry', state: 'failed' } })).json;
    expect(first).toMatchObject({ matched: 2, done: 2, failures: [] });
    const again = (await admin(pair.main, 'POST', '/jobs/bulk', { action: 'retry', filter: { payload: 'label=bulk-retry', state: 'failed' } })).json;
    expect(again.failures).toEqual([]);
    // each original was retried once, however often the bulk action ran
    const audit = (await admin(pair.main, 'GET', '/audit')).json.audit.filter((a: any) => a.action === 'job.retry' && failing.includes(a.target));
    expect(audit).toHaveLength(2);
    expect((await admin(pair.main, 'POST', `/jobs/${failing[0]}/retry`)).status).toBe(409);
  });
});

describe('admin security', () => {
  it('refuses a cross-site form post, a post without the CSRF token and an unauthenticated request, changing nothing', async () => {
    const session = (await context.cookies()).find((c) => c.name === 'jobgate_admin')!;
    const cookie = `jobgate_admin=${session.value}`;
    const before = (await admin(pair.main, 'GET', '/audit')).json.audit.length;
    const overrideBefore = (await admin(pair.main, 'GET', '/override')).json.audit.length;
    const url = `${pair.main.url}/admin/api/override`;
    const crossSiteForm = await fetch(url, { method: 'PUT', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.test', 'sec-fetch-site': 'cross-site' }, body: 'enabled=true&reason=x' });
    expect([403, 415]).toContain(crossSiteForm.status);
    const crossSiteJson = await fetch(url, { method: 'PUT', headers: { cookie, 'content-type': 'application/json', origin: 'http://evil.test', 'sec-fetch-site': 'cross-site' }, body: JSON.stringify({ enabled: true, reason: 'x' }) });
    expect(crossSiteJson.status).toBe(403);
    const noToken = await fetch(url, { method: 'PUT', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ enabled: true, reason: 'x' }) });
    expect(noToken.status).toBe(403);
    expect(((await noToken.json()) as any).detail).toContain('CSRF');
    const anonymous = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ enabled: true, reason: 'x' }) });
    expect(anonymous.status).toBe(401);
    const anonymousPage = await fetch(`${pair.main.url}/admin/jobs`, { redirect: 'manual' });
    expect(anonymousPage.status).toBe(303);
    expect((await admin(pair.main, 'GET', '/override')).json.override.enabled).toBe(false);
    expect((await admin(pair.main, 'GET', '/override')).json.audit.length).toBe(overrideBefore);
    expect((await admin(pair.main, 'GET', '/audit')).json.audit.length).toBe(before);

    const headers = (await fetch(`${pair.main.url}/admin/fetcher_service`, { headers: { cookie } })).headers;
    expect(headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(headers.get('x-content-type-options')).toBe('nosniff');
    expect(headers.get('cache-control')).toBe('no-store');
  });

  it('ends every session when ADMIN_PASSWORD changes', async () => {
    const session = (await context.cookies()).find((c) => c.name === 'jobgate_admin')!;
    const cookie = `jobgate_admin=${session.value}`;
    expect((await fetch(`${pair.main.url}/admin/api/fetcher_service`, { headers: { cookie } })).status).toBe(200);
    await pair.main.stop();
    await pair.startMain({ ADMIN_PASSWORD: 'a-new-admin-password' });
    expect((await fetch(`${pair.main.url}/admin/api/fetcher_service`, { headers: { cookie } })).status).toBe(401);
    expect((await fetch(`${pair.main.url}/admin/jobs`, { headers: { cookie }, redirect: 'manual' })).status).toBe(303);
    await pair.main.stop();
    await pair.startMain();
    // bound to the password it was opened with: valid again only under that same password
    expect((await fetch(`${pair.main.url}/admin/api/fetcher_service`, { headers: { cookie } })).status).toBe(200);
  });

  it('answers 429 to wrong passwords beyond the limit (5 a minute per address)', async () => {
    // the count lives in PostgreSQL (shared by every main): the browser tests above spent one wrong password
    await db.pool.query('DELETE FROM jobgate.auth_throttle');
    const login = (password: string) =>
      fetch(`${pair.main.url}/admin/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `password=${encodeURIComponent(password)}` });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await login('wrong-password')).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
    expect((await login(ADMIN_PASSWORD)).status).toBe(429); // even the right one, until the window passes
    const basic = await fetch(`${pair.main.url}/admin/api/fetcher_service`, { headers: { authorization: `Basic ${Buffer.from('admin:wrong').toString('base64')}` } });
    expect(basic.status).toBe(429);
    // the count is in PostgreSQL: a restarted (or another) main knows it too
    await pair.main.stop();
    await pair.startMain();
    expect((await login(ADMIN_PASSWORD)).status).toBe(429);
  });

  it('caps wrong passwords from all addresses together, so rotating addresses does not multiply the budget', async () => {
    await db.pool.query('DELETE FROM jobgate.auth_throttle');
    // main believes X-Forwarded-For from loopback (TRUST_PROXY=loopback): 100 addresses, one wrong password each
    const wrong = (address: string) => fetch(`${pair.main.url}/admin/api/fetcher_service`, { headers: { 'x-forwarded-for': address, authorization: `Basic ${Buffer.from('admin:wrong').toString('base64')}` } });
    const statuses: number[] = [];
    for (let i = 0; i < 101; i++) statuses.push((await wrong(`10.9.${Math.floor(i / 250)}.${i % 250}`)).status);
    expect(statuses.slice(0, 100).every((s) => s === 401)).toBe(true);
    expect(statuses[100]).toBe(429);
    await db.pool.query('DELETE FROM jobgate.auth_throttle');
  });
});
