/**
 * Every dashboard page in a real headless browser (Debian's chromium driven by playwright-core)
 * against a controller, the simulator, dry-run agents and Redis, clicked through as an operator
 * would: the convergence page names apps and links each cell to its page; a cell's page shows its
 * apps by org/space/app (guids as tooltips), its c2c entries by source app and port, its ASG sets
 * by security group and its convergence; an unknown cell is a 404 page that says so; the explain
 * form answers as `cfnet explain` does (allowed, denied, and the CLI's error for an unknown or an
 * ambiguous name, which --space narrows); the charts draw; bull-board shows no button of an
 * action cfnet refuses, and a refusal shows the server's message; logging out ends the session.
 * Assertions are on the DOM.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { type Browser, chromium, type Page } from 'playwright-core';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import { REFUSED_LABELS } from '../../src/ops/dashboard/bull-board-limits.js';
import { versionText } from '../../src/ops/format.js';
import { loadRedisWorld } from '../../src/ops/world-reader.js';
import { CELL_STATE_NAMES, type CellState } from '../../src/state/convergence.js';
import { Keys } from '../../src/state/keys.js';
import { cfnet, type Foundation, REDIS_URL, startFoundation, waitUntil } from '../integration/ops-helpers.js';

const CHROMIUM = process.env.CFNET_CHROMIUM ?? '/usr/bin/chromium';
const TOKEN = 'operator-token-for-the-dashboard-pages-test';

describe('dashboard pages, clicked through in a headless browser', {
  skip: !existsSync(CHROMIUM) && `no ${CHROMIUM}`,
}, () => {
  let f: Foundation;
  let redis: Redis;
  let base: string;
  let browser: Browser | null = null;
  let page: Page;
  let web: string;
  let api: string;
  let webLabel: string;
  let apiLabel: string;
  let apiCell: string;
  let twinSpace: string;

  before(async () => {
    f = await startFoundation('dash-pages', { token: TOKEN, agents: true });
    redis = createRedis(REDIS_URL);
    const keys = new Keys(f.ns);
    base = f.controller.operatorUrl!;
    const cells = [...f.sim.world.cells.keys()].sort();
    const spaces = [...f.sim.world.spaces.values()].sort((a, b) => a.name.localeCompare(b.name));
    const [s1, s2] = [spaces[0]!, spaces.find((s) => s.orgGuid === spaces[0]!.orgGuid && s !== spaces[0])!];
    const org = f.sim.world.orgs.get(s1.orgGuid)!.name;
    const start = async (name: string, spaceGuid: string, cell: string) =>
      (await f.sim.apply({ kind: 'app-start', name, spaceGuid, instances: 1, cellIds: [cell] })).result
        .appGuid as string;
    apiCell = cells[1]!;
    web = await start('dp-web', s1.guid, cells[0]!);
    api = await start('dp-api', s2.guid, apiCell);
    // one name in two spaces: ambiguous without --space
    await start('dp-twin', s1.guid, cells[0]!);
    await start('dp-twin', s2.guid, apiCell);
    twinSpace = s2.name;
    webLabel = `${org}/${s1.name}/dp-web`;
    apiLabel = `${org}/${s2.name}/dp-api`;
    await f.sim.apply({ kind: 'policy-add', source: web, destination: api, port: 8080 });
    await waitUntil(
      'the apps, their names and the policy in the stored world and the api cell converged on it',
      async () => {
        const w = await loadRedisWorld(redis, keys);
        if (
          !w.ready ||
          w.names.appsNamed('dp-api').length !== 1 ||
          w.names.appsNamed('dp-twin').length !== 2 ||
          w.policies().from(web).length !== 1
        )
          return null;
        const rs = await cfnet(['rules', '--cell', apiCell, '--json'], { namespace: f.ns });
        return rs.code === 0 && rs.stdout.includes('"dstIp"') ? true : null;
      },
      60_000,
      200,
    );
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
      ],
      timeout: 60_000,
    });
    page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    page.setDefaultTimeout(30_000);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    if (redis) await closeRedis(redis);
    await f?.stop();
  });

  it('logging in leads to the convergence page, whose cells link to their pages and whose journal names apps', async () => {
    await page.goto(`${base}/dashboard`);
    await page.waitForURL(/\/dashboard\/login/);
    await page.fill('#token', TOKEN);
    await page.click('#login');
    await page.waitForURL(`${base}/dashboard`);
    const link = page.locator(`#cells tr[data-cell="${apiCell}"] a`);
    await link.waitFor();
    assert.equal(await link.getAttribute('href'), `/dashboard/cells/${apiCell}`);
    // the app start is journaled with the app: shown by name, the guid as its tooltip
    const named = page.locator('#journal span.named', { hasText: apiLabel }).first();
    await named.waitFor();
    assert.equal(await named.getAttribute('title'), api);
    assert.equal(
      await page.locator('#journal td', { hasText: api }).count(),
      0,
      'no bare guid of a named app',
    );
    await link.click();
    await page.waitForURL(`${base}/dashboard/cells/${apiCell}`);
  });

  it("a cell's page shows its apps by name, c2c entries by source app and port, ASGs by group and its convergence", async () => {
    await page.goto(`${base}/dashboard/cells/${apiCell}`);
    const app = page.locator('#apps span.named', { hasText: apiLabel });
    assert.equal(await app.count(), 1);
    assert.equal(await app.getAttribute('title'), api);
    const c2c = page.locator('#c2c tbody tr', { hasText: webLabel });
    assert.equal(await c2c.count(), 1, await page.locator('#c2c').innerText());
    assert.match(await c2c.innerText(), new RegExp(`${apiLabel}.*tcp\\s+8080`, 's'));
    assert.equal(await page.locator('#c2c span.named', { hasText: webLabel }).getAttribute('title'), web);
    // the sim's foundation binds security groups: sets are named by them
    const groups = await page.locator('#asg-sets tbody tr span.named').allInnerTexts();
    assert.ok(groups.length > 0, await page.locator('#asg-sets').innerText());
    const names = new Set([...f.sim.world.securityGroups.values()].map((g) => g.name));
    for (const g of groups) assert.ok(names.has(g), `${g} is a security group`);
    const state = (await page.textContent('#cell-state'))!.split(' ')[0] as CellState;
    assert.ok(CELL_STATE_NAMES.includes(state), state);
    const cli = await cfnet(['cells', '--json'], { namespace: f.ns });
    const row = (JSON.parse(cli.stdout) as Array<{ cellId: string; desired: number }>).find(
      (c) => c.cellId === apiCell,
    )!;
    assert.equal(
      Number(await page.getAttribute('#cell-desired', 'title')),
      row.desired,
      'the desired version cfnet cells shows',
    );
    assert.equal(await page.textContent('#cell-desired'), versionText(row.desired), 'shown as its time');
    assert.ok((await page.locator('#desired tbody tr').count()) >= 1, 'desired version history');
    await page
      .locator('#applied tbody tr td', { hasText: /^\d\d:\d\d:\d\d\.\d{3}Z$/ })
      .first()
      .waitFor({ state: 'attached' });
    assert.equal(await page.textContent('#errors tbody td.empty'), 'none', 'no errors: the table says none');
  });

  it("the cell page's JSON and the explain JSON are the same readers' answers, with the token", async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const cell = await fetch(`${base}/dashboard/api/cells/${apiCell}`, { headers: auth });
    assert.equal(cell.status, 200);
    const detail = (await cell.json()) as { apps: Array<{ label: string; app: { guid: string } }> };
    assert.deepEqual(
      detail.apps.filter((a) => a.app.guid === api).map((a) => a.label),
      [apiLabel],
    );
    const unknown = await fetch(`${base}/dashboard/api/cells/no-such-cell`, { headers: auth });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'CFNET_NOT_FOUND');
    const x = await fetch(`${base}/dashboard/api/explain?from=dp-web&to=dp-api&port=8080`, { headers: auth });
    const cli = await cfnet(['explain', '--from', 'dp-web', '--to', 'dp-api', '--port', '8080', '--json'], {
      namespace: f.ns,
    });
    const [fromPage, fromCli] = [await x.json(), JSON.parse(cli.stdout)] as Array<Record<string, unknown>>;
    assert.equal(fromPage!.allowed, true);
    assert.deepEqual(fromPage!.policies, fromCli!.policies);
    const anon = await fetch(`${base}/dashboard/api/cells/${apiCell}`);
    assert.equal(anon.status, 401);
  });

  it('an unknown cell is a 404 page that says the cell is not known', async () => {
    const res = await page.goto(`${base}/dashboard/cells/no-such-cell`);
    assert.equal(res?.status(), 404);
    assert.match((await page.textContent('#error'))!, /^cell "no-such-cell" not found: /);
    assert.match((await res?.headerValue('content-type')) ?? '', /^text\/html/);
    const bad = await page.goto(`${base}/dashboard/cells/${encodeURIComponent('not a cell id!')}`);
    assert.equal(bad?.status(), 400);
    assert.match((await page.textContent('#error'))!, /cellId/);
  });

  it('the explain form answers as cfnet explain: allowed, denied, the CLI message for an unknown or ambiguous name', async () => {
    await page.goto(`${base}/dashboard`);
    await page.click('#nav-explain');
    await page.waitForURL(`${base}/dashboard/explain`);
    const ask = async (from: string, to: string, port: string) => {
      await page.fill('#x-from', from);
      await page.fill('#x-to', to);
      await page.fill('#x-port', port);
      await page.click('#explain-submit');
      await page.waitForURL(/\/dashboard\/explain\?/);
      await page.locator('#explain-result').waitFor();
    };
    await ask('dp-web', 'dp-api', '8080');
    const allowed = (await page.textContent('#verdict'))!;
    assert.match(allowed, /^ALLOWED/);
    const cliAllowed = await cfnet(['explain', '--from', 'dp-web', '--to', 'dp-api', '--port', '8080'], {
      namespace: f.ns,
    });
    assert.equal(allowed, cliAllowed.stdout.split('\n')[0], 'the verdict line of the CLI');
    assert.ok((await page.locator('#explain-steps li').count()) >= 3, 'the steps');
    assert.ok((await page.locator(`#explain-cells a[href="/dashboard/cells/${apiCell}"]`).count()) >= 1);

    await ask('dp-web', 'dp-api', '9999');
    assert.match((await page.textContent('#verdict'))!, /^DENIED/);

    // to an address: the egress decision per container, by ASG (as cfnet explain --to <ip>)
    await ask('dp-web', '203.0.113.7', '443');
    const egress = await cfnet(['explain', '--from', 'dp-web', '--to', '203.0.113.7', '--port', '443'], {
      namespace: f.ns,
    });
    assert.equal(await page.textContent('#verdict'), egress.stdout.split('\n')[0]);
    assert.equal(await page.locator('#explain-decisions tbody tr').count(), 1, 'one container of dp-web');

    await ask('dp-nothing', 'dp-api', '8080');
    const cli = await cfnet(['explain', '--from', 'dp-nothing', '--to', 'dp-api', '--port', '8080'], {
      namespace: f.ns,
    });
    assert.equal((await page.textContent('#explain-error'))!, cli.stderr.split('\n')[0]);
    assert.equal(await page.getAttribute('#explain-error', 'data-code'), 'CFNET_NOT_FOUND');
    assert.equal(await page.inputValue('#x-from'), 'dp-nothing', 'the form keeps the question');

    await ask('dp-twin', 'dp-api', '8080');
    const amb = await cfnet(['explain', '--from', 'dp-twin', '--to', 'dp-api', '--port', '8080'], {
      namespace: f.ns,
    });
    assert.equal((await page.textContent('#explain-error'))!, amb.stderr.split('\n')[0]);
    assert.equal(await page.getAttribute('#explain-error', 'data-code'), 'CFNET_INVALID');
    // narrowed by its space (--space), the name is one app again
    await page.fill('#x-space', twinSpace);
    await ask('dp-twin', 'dp-api', '8080');
    assert.match((await page.textContent('#verdict'))!, /^DENIED/);
  });

  it('the charts page draws lag and queue backlog from the history', async () => {
    await page.click('#nav-charts');
    await page.waitForURL(`${base}/dashboard/charts`);
    for (const id of ['lag', 'queue']) {
      await page.locator(`#${id}-chart canvas`).waitFor();
      assert.ok(Number(await page.getAttribute(`#${id}-chart`, 'data-points')) > 0, `${id} has data points`);
      assert.equal(await page.isHidden(`#${id}-empty`), true, 'the no-data text is hidden');
    }
    const legend = (await page.locator('#lag-chart .u-legend').textContent()) ?? '';
    assert.match(legend, /max lag/);
    // before the first sample (a replica just started) the page says there is no data yet
    await page.route('**/dashboard/api/history', (route) =>
      route.fulfill({ json: { intervalMs: 10_000, capacity: 360, samples: [] } }),
    );
    await page.reload();
    await page.locator('#lag-chart[data-points="0"]').waitFor({ state: 'attached' });
    assert.match((await page.textContent('#lag-empty'))!, /^No data yet/);
    assert.equal(await page.isVisible('#lag-empty'), true);
    assert.equal(await page.isHidden('#lag-chart'), true);
    assert.equal(await page.locator('#lag-chart canvas').count(), 0);
    await page.unroute('**/dashboard/api/history');
  });

  it('bull-board shows no button of an action cfnet refuses, and a refusal shows the server message', async () => {
    await page.click('#queues-link');
    await page.waitForURL(/\/dashboard\/queues/);
    await page.goto(`${base}/dashboard/queues/queue/reconcile?status=completed`);
    await page.getByText('reconcile', { exact: true }).first().waitFor();
    // open every menu the page has, so refused items in them would be rendered too
    // labels of the visible buttons and menu items; an icon button by its icon (`icon:lucide-…`)
    const visibleLabels = async () =>
      page.evaluate(() =>
        Array.from(document.querySelectorAll('button, [role="menuitem"]'))
          .filter((el) => (el as HTMLElement).offsetParent !== null)
          .map(
            (el) =>
              (el.getAttribute('aria-label') || el.textContent || '').trim() ||
              `icon:${el.querySelector(':scope > svg')?.getAttribute('class')?.split(' ')[1] ?? ''}`,
          ),
      );
    const openMenus = async () => {
      // the queue's menu (its actions are menu items, rendered while it is open)
      await page.locator('button:has(svg.lucide-ellipsis-vertical)').first().click();
      await page.getByRole('menuitem', { name: 'Pause', exact: true }).waitFor();
    };
    // the first job card is drawn (its action buttons with it)
    await page.locator('button:has(svg.lucide-refresh-cw)').first().waitFor();
    await openMenus();
    const shown = await visibleLabels();
    await page.keyboard.press('Escape');
    for (const label of REFUSED_LABELS)
      assert.ok(!shown.includes(label), `${label} is hidden: ${shown.join(' | ')}`);
    assert.ok(!shown.includes('icon:lucide-files'), `no duplicate button: ${shown.join(' | ')}`);
    assert.ok(shown.includes('Pause'), `pausing is allowed: ${shown.join(' | ')}`);
    assert.ok(shown.includes('Clean all'), `cleaning completed jobs is allowed: ${shown.join(' | ')}`);
    assert.ok(shown.includes('icon:lucide-refresh-cw'), `retrying a job is allowed: ${shown.join(' | ')}`);
    assert.ok(
      shown.includes('icon:lucide-trash'),
      `removing a completed job is allowed: ${shown.join(' | ')}`,
    );
    await page.goto(`${base}/dashboard/queues/queue/reconcile?status=waiting`);
    await page.getByText('reconcile', { exact: true }).first().waitFor();
    const waiting = await visibleLabels();
    assert.ok(!waiting.includes('Clean all'), `cleaning waiting jobs is refused: ${waiting.join(' | ')}`);
    // a refusal the server makes (an allowed button whose request is refused on the way):
    // the UI's toast carries the 403's message
    await page.route('**/dashboard/queues/api/queues/reconcile/pause', (route) =>
      route.continue({ url: `${base}/dashboard/queues/api/queues/reconcile/empty` }),
    );
    await page.goto(`${base}/dashboard/queues/queue/reconcile?status=completed`);
    await openMenus();
    await page.getByRole('menuitem', { name: 'Pause', exact: true }).click();
    await page.locator('[role="alertdialog"] button', { hasText: 'Confirm' }).click();
    await page.getByText('Refused by cfnet', { exact: true }).waitFor();
    await page
      .getByText(/^PUT \/api\/queues\/:queueName\/empty is not allowed from the cfnet dashboard/)
      .waitFor();
    await page.unroute('**/dashboard/queues/api/queues/reconcile/pause');
  });

  it('the dry-run banner says how many cells run their agent in dry-run, on the live page and on bull-board', async () => {
    // the snapshot as if two agents reported dry-run (what the browser is told, nothing else)
    const dry = ['cell-x', 'cell-y'];
    const withDryRun = async (route: import('playwright-core').Route) => {
      const res = await route.fetch();
      const s = { ...((await res.json()) as Record<string, unknown>), dryRunCells: dry };
      await route.fulfill({ response: res, json: s });
    };
    await page.route('**/dashboard/api/snapshot', withDryRun);
    await page.route('**/dashboard/api/stream', (route) => route.abort());
    await page.goto(`${base}/dashboard`);
    const banner = page.locator('#dry-run-banner', { hasText: '2 cells run their agents in dry-run' });
    await banner.waitFor();
    assert.equal(await banner.getAttribute('title'), 'cell-x, cell-y');
    await page.goto(`${base}/dashboard/queues/`);
    await banner.waitFor();
    await page.unroute('**/dashboard/api/snapshot');
    await page.unroute('**/dashboard/api/stream');
    // a server-rendered page shows the server's own count (the foundation's agents run in dry-run:
    // the banner shows once agents report it, and is hidden while none does)
    const real = (await (
      await fetch(`${base}/dashboard/api/snapshot`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json()) as { dryRunCells: string[] };
    await page.goto(`${base}/dashboard/charts`);
    const n = real.dryRunCells.length;
    if (n === 0) assert.equal(await page.isHidden('#dry-run-banner'), true);
    else assert.match((await page.textContent('#dry-run-banner'))!, new RegExp(`^${n} cells? run`));
  });

  it('logging out ends the session: every page leads to the login form again', async () => {
    await page.goto(`${base}/dashboard/explain`);
    await page.click('#logout');
    await page.waitForURL(/\/dashboard\/login/);
    for (const path of [
      '/dashboard',
      `/dashboard/cells/${apiCell}`,
      '/dashboard/charts',
      '/dashboard/explain',
    ]) {
      await page.goto(`${base}${path}`);
      await page.waitForURL(/\/dashboard\/login\?next=/);
    }
  });
});
