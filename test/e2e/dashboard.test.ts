/**
 * The operator dashboard in a real headless browser (Debian's chromium driven by playwright-core)
 * against a real controller, the simulator and Redis: the login page refuses a wrong token and
 * accepts the operator token; the convergence page shows a failed reconcile (live); after its cause
 * is repaired, the Retry button retries it and the page shows it completed (and the emptied table
 * says "none"); bull-board lists the
 * reconcile queue. The HTTP API refuses requests without the token.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { type Browser, chromium, type Page } from 'playwright-core';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import type { JobSummary } from '../../src/ops/queue-admin.js';
import { CELL_STATE_NAMES, CELL_STATES, type CellState } from '../../src/state/convergence.js';
import { Keys } from '../../src/state/keys.js';
import {
  cfnet,
  cfnetJson,
  type Foundation,
  REDIS_URL,
  startFoundation,
  waitUntil,
} from '../integration/ops-helpers.js';

const CHROMIUM = process.env.CFNET_CHROMIUM ?? '/usr/bin/chromium';
const TOKEN = 'operator-token-for-the-dashboard-test';

describe('dashboard in a headless browser', { skip: !existsSync(CHROMIUM) && `no ${CHROMIUM}` }, () => {
  let f: Foundation;
  let redis: Redis;
  let keys: Keys;
  let base: string;
  let browser: Browser | null = null;
  let cell: string;
  let failedJob: JobSummary;

  before(async () => {
    f = await startFoundation('dashboard', { token: TOKEN, attempts: 2, backoffMs: 20 });
    redis = createRedis(REDIS_URL);
    keys = new Keys(f.ns);
    base = f.controller.operatorUrl!;
    assert.ok(base, 'the operator port listens');
    const cells = [...f.sim.world.cells.keys()].sort();
    await waitUntil(
      'initial reconciles',
      async () => (await redis.scard(keys.ruleSetCells)) === cells.length,
      30_000,
      25,
    );
    // a reconcile that fails: the cell's world record is unreadable
    cell = cells[0]!;
    await redis.hset(keys.cellWorld(cell), 'zz-broken', '{not json');
    const rep = await cfnet(['queue', 'replay', '--cell', cell, '--wait', '--timeout', '30s'], {
      namespace: f.ns,
    });
    assert.equal(rep.code, 1, rep.stderr);
    const failed = await cfnetJson<JobSummary[]>(['queue', 'list', '--state', 'failed'], f.ns);
    assert.equal(failed.length, 1, 'one failed job');
    failedJob = failed[0]!;

    // playwright gives the browser a fresh temporary profile (and removes it on close)
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      timeout: 60_000,
    });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await redis?.hdel(keys.cellWorld(cell), 'zz-broken').catch(() => {});
    if (redis) await closeRedis(redis);
    await f?.stop();
  });

  async function newPage(): Promise<Page> {
    const context = await browser!.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    return page;
  }

  it('the API and pages need the operator token', async () => {
    const anon = await fetch(`${base}/dashboard/api/snapshot`);
    assert.equal(anon.status, 401);
    assert.equal(((await anon.json()) as { error: { code: string } }).error.code, 'CFNET_UNAUTHENTICATED');
    const wrong = await fetch(`${base}/dashboard/api/snapshot`, {
      headers: { authorization: 'Bearer not-the-operator-token' },
    });
    assert.equal(wrong.status, 401);
    const ok = await fetch(`${base}/dashboard/api/snapshot`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(ok.status, 200);
    const snap = (await ok.json()) as { namespace: string; failed: JobSummary[] };
    assert.equal(snap.namespace, f.ns);
    assert.deepEqual(
      snap.failed.map((j) => j.id),
      [failedJob.id],
    );
    const retryAnon = await fetch(`${base}/dashboard/api/jobs/${failedJob.id}/retry`, { method: 'POST' });
    assert.equal(retryAnon.status, 401);
    const page = await fetch(`${base}/dashboard`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    assert.equal(page.status, 303);
    assert.match(page.headers.get('location') ?? '', /^\/dashboard\/login\?next=/);
  });

  it('log in, see the failed job, retry it, see it complete', async () => {
    const page = await newPage();
    try {
      await page.goto(`${base}/dashboard`);
      await page.waitForURL(/\/dashboard\/login/);
      await page.fill('#token', 'a-wrong-token-of-some-length');
      await page.click('#login');
      await page.waitForSelector('#error');
      assert.equal(await page.textContent('#error'), 'Wrong operator token.');

      await page.fill('#token', TOKEN);
      await page.click('#login');
      await page.waitForURL(`${base}/dashboard`);
      const row = page.locator(`#failed tbody tr[data-job-id="${failedJob.id}"]`);
      await row.waitFor();
      const text = (await row.textContent()) ?? '';
      assert.ok(text.includes(cell), text);
      assert.match(text, /JSON/);
      await page.locator('#live', { hasText: 'live' }).waitFor();
      assert.equal(await page.textContent('#count-failed b'), '1');
      assert.equal(await page.textContent('#namespace'), f.ns);
      // the latency distribution of the finished reconciles (the initial resync's at least)
      await page.locator('#latency-summary', { hasText: /p50 .* · \d+ jobs/ }).waitFor();
      assert.ok((await page.locator('#latency tbody tr').count()) >= 1, 'latency buckets');
      assert.equal(await page.locator('#latency tbody td.empty').count(), 0, 'not the empty-table row');
      // every cell is listed with its convergence state
      for (const c of f.sim.world.cells.keys()) await page.locator(`#cells tr[data-cell="${c}"]`).waitFor();
      // and what the state means (src/state/convergence.ts) as the state's tooltip
      const firstCell = [...f.sim.world.cells.keys()][0]!;
      const stateTd = page.locator(`#cells tr[data-cell="${firstCell}"] td[class^="state-"]`);
      const shown = (await stateTd.textContent()) as CellState;
      assert.ok(CELL_STATE_NAMES.includes(shown), shown);
      assert.equal(await stateTd.getAttribute('title'), CELL_STATES[shown]);

      // repair the cause, then retry from the page
      await redis.hdel(keys.cellWorld(cell), 'zz-broken');
      await row.locator('button.retry').click();
      await page.locator('#retry-message', { hasText: `job #${failedJob.id} retried` }).waitFor();
      // the live stream shows it gone from the failed jobs and completed among the recent ones
      await page.locator(`#failed tbody tr[data-job-id="${failedJob.id}"]`).waitFor({ state: 'detached' });
      // an empty table says so, across all its columns
      const none = page.locator('#failed tbody td.empty');
      await none.waitFor();
      assert.equal(await none.textContent(), 'none');
      assert.equal(await none.getAttribute('colspan'), '6');
      assert.equal(await page.locator('#failed tbody tr').count(), 1);
      await page
        .locator(`#recent tbody tr[data-job-id="${failedJob.id}"]`, { hasText: 'completed' })
        .waitFor();
      assert.equal(await page.textContent('#count-failed b'), '0');
      // a leader that publishes nothing (a source not listed since Redis lost its data) is named
      assert.equal(await page.isHidden('#publish-warning'), true);
      await redis.hset(keys.publishState, {
        leader: 'ctl-x',
        state: 'waiting',
        missing: 'policy',
        since: String(Date.now()),
      });
      await page
        .locator('#publish-warning', { hasText: 'NOT being published: the leader waits for policy' })
        .waitFor();
      await redis.hset(keys.publishState, { state: 'publishing', missing: '' });
      await page.locator('#publish-warning').waitFor({ state: 'hidden' });
      const job = await cfnetJson<{ state: string; attemptsMade: number }>(
        ['queue', 'show', failedJob.id],
        f.ns,
      );
      assert.equal(job.state, 'completed');
    } finally {
      await page.context().close();
    }
  });

  it('bull-board shows the reconcile queue to a logged-in operator', async () => {
    const page = await newPage();
    try {
      await page.goto(`${base}/dashboard/login`);
      await page.fill('#token', TOKEN);
      await page.click('#login');
      await page.waitForURL(`${base}/dashboard`);
      await page.click('#queues-link');
      await page.waitForURL(/\/dashboard\/queues/);
      await page.getByText('reconcile', { exact: true }).first().waitFor();
      assert.match(await page.title(), /cfnet queues/);
      // logging out ends the session: the board redirects to the login page again
      await page.goto(`${base}/dashboard/logout`);
      await page.goto(`${base}/dashboard/queues/`);
      await page.waitForURL(/\/dashboard\/login/);
    } finally {
      await page.context().close();
    }
  });
});
