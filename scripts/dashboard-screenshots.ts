// Screenshots of the dashboard's pages for docs/operations.md (docs/img/dashboard-*.png): starts
// the test foundation (simulator, controller with the dashboard, dry-run agents, on the Redis of
// REDIS_URL), makes some traffic for the charts, and photographs each page in headless chromium at
// 1280x800. Usage: REDIS_URL=redis://127.0.0.1:6379/0 npx tsx scripts/dashboard-screenshots.ts
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { cfnet, startFoundation } from '../test/integration/ops-helpers.js';

const CHROMIUM = process.env.CFNET_CHROMIUM ?? '/usr/bin/chromium';
const TOKEN = 'operator-token-for-the-screenshots';
const OUT = join(import.meta.dirname, '..', 'docs', 'img');
/** Long enough for a few history samples (one per 10 s) with changes in between. */
const CHURN_MS = 45_000;

const f = await startFoundation('screenshots', { token: TOKEN, agents: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--hide-scrollbars'],
});
try {
  await mkdir(OUT, { recursive: true });
  const base = f.controller.operatorUrl!;
  const cells = [...f.sim.world.cells.keys()].sort();
  const spaces = [...f.sim.world.spaces.values()].sort((a, b) => a.name.localeCompare(b.name));
  const start = async (name: string, spaceGuid: string, cell: string) =>
    (await f.sim.apply({ kind: 'app-start', name, spaceGuid, instances: 2, cellIds: [cell] })).result
      .appGuid as string;
  const web = await start('frontend', spaces[0]!.guid, cells[0]!);
  const api = await start('backend', spaces[1]!.guid, cells[1]!);
  await f.sim.apply({ kind: 'policy-add', source: web, destination: api, port: 8080 });
  // churn: apps start while reconciles are paused for a while, so lag and the backlog rise and
  // fall on the charts
  const began = Date.now();
  let paused = false;
  for (let i = 0; Date.now() < began + CHURN_MS; i++) {
    const t = Date.now() - began;
    if (!paused && t > CHURN_MS / 4 && t < CHURN_MS / 2) {
      await cfnet(['queue', 'pause'], { namespace: f.ns });
      paused = true;
    } else if (paused && t >= (CHURN_MS * 3) / 4) {
      await cfnet(['queue', 'resume'], { namespace: f.ns });
      paused = false;
    }
    await start(`worker-${i}`, spaces[i % spaces.length]!.guid, cells[i % cells.length]!);
    await new Promise((r) => setTimeout(r, 1500));
  }
  if (paused) await cfnet(['queue', 'resume'], { namespace: f.ns });
  await new Promise((r) => setTimeout(r, 10_000));
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await page.goto(`${base}/dashboard/login`);
  await page.fill('#token', TOKEN);
  await page.click('#login');
  await page.waitForURL(`${base}/dashboard`);
  await page.locator('#live', { hasText: 'live' }).waitFor();
  await page.screenshot({ path: join(OUT, 'dashboard-convergence.png') });

  await page.goto(`${base}/dashboard/cells/${cells[1]}`);
  await page.screenshot({ path: join(OUT, 'dashboard-cell.png') });

  await page.goto(`${base}/dashboard/explain?from=frontend&to=backend&port=8080&protocol=tcp`);
  await page.locator('#verdict').waitFor();
  await page.screenshot({ path: join(OUT, 'dashboard-explain.png') });

  await page.goto(`${base}/dashboard/charts`);
  await page.locator('#queue-chart canvas').waitFor();
  await page.screenshot({ path: join(OUT, 'dashboard-charts.png') });

  await page.goto(`${base}/dashboard/queues/queue/reconcile?status=completed`);
  await page.locator('button:has(svg.lucide-refresh-cw)').first().waitFor();
  await page.screenshot({ path: join(OUT, 'dashboard-queues.png') });
  console.log(`screenshots in ${OUT}`);
} finally {
  await browser.close();
  await f.stop();
}
