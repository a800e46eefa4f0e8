/**
 * The cell page (`/dashboard/cells/:cellId`): ops/cell-detail.ts rendered on the server, apps by
 * `org/space/app` with their guids as tooltips. Every table says "none" when empty. An unknown
 * cell gets a page that says so (404).
 */
import type { CellDetail } from '../cell-detail.js';
import { CELL_STATES } from '../cells.js';
import { ago, formatDuration, isoTime, versionText } from '../format.js';
import { html, page, type Raw } from './layout.js';

function table(id: string, head: readonly string[], rows: Raw[]): Raw {
  return html`<table id="${id}"><thead><tr>${head.map((h) => html`<th>${h}</th>`)}</tr></thead><tbody>${
    rows.length > 0 ? rows : html`<tr><td class="muted empty" colspan="${head.length}">none</td></tr>`
  }</tbody></table>`;
}

const guidTitled = (label: string, guid: string) =>
  html`<span class="named" title="${guid || 'no app guid'}">${label}</span>`;

export function cellPage(d: CellDetail, now: number, dryRunCells: readonly string[]): string {
  const c = d.convergence;
  const lag = c.lagMs > 0 ? formatDuration(c.lagMs) : '0';
  const body = html`<main>
<section class="wide" id="convergence"><h2>Convergence</h2>
  <p><span id="cell-state" class="state-${c.state}" title="${CELL_STATES[c.state]}">${c.state}${c.job ? ` (job ${c.job.state})` : ''}</span>
  · lag <span id="cell-lag">${lag}</span>
  · desired <span id="cell-desired" title="${c.desired}">${versionText(c.desired)}</span>
  · applied <span id="cell-applied" title="${c.applied}">${versionText(c.applied)}</span>
  · reported ${ago(c.reportedAt, now)}${d.status?.dryRun ? ' · agent in dry-run' : ''}</p>
  <p class="muted">${CELL_STATES[c.state]}</p></section>
<section class="wide"><h2>Containers by app</h2>${table(
    'apps',
    ['app', 'handle', 'ip', 'workload', 'egress set', 'netin'],
    d.apps.flatMap((g) =>
      g.containers.map(
        (k, i) =>
          html`<tr data-app="${g.app.guid}">${i === 0 ? html`<td rowspan="${g.containers.length}">${guidTitled(g.label, g.app.guid)}</td>` : ''}<td>${k.handle}</td><td>${k.ip}</td><td>${k.workload}</td><td><code>${k.egress}</code></td><td>${k.netIn.join(', ') || '-'}</td></tr>`,
      ),
    ),
  )}</section>
<section class="wide"><h2>Egress rule sets (ASGs)</h2>${table(
    'asg-sets',
    ['security groups', 'set', 'containers', 'rules'],
    d.asgSets.map(
      (s) =>
        html`<tr data-set="${s.hash}"><td>${
          s.groups.length > 0
            ? s.groups.map(
                (g, i) => html`${i > 0 ? ', ' : ''}<span class="named" title="${g.guid}">${g.name}</span>`,
              )
            : html`<span class="muted">${s.source}</span>`
        }</td><td><code>${s.hash}</code></td><td>${s.containers}</td><td class="reason">${s.rules.join('; ') || 'no rules (deny all)'}</td></tr>`,
    ),
  )}</section>
<section class="wide"><h2>c2c allow entries</h2>${table(
    'c2c',
    ['from apps', 'to app', 'destination', 'protocol', 'ports'],
    d.c2c.map(
      (e) =>
        html`<tr><td>${
          e.sources.length > 0
            ? e.sources.map((s, i) => html`${i > 0 ? ', ' : ''}${guidTitled(s.label, s.guid)}`)
            : html`<span class="muted">tag ${e.srcTag}</span>`
        }</td><td>${guidTitled(e.destination.label, e.destination.guid)}</td><td>${e.destination.ip}</td><td>${e.protocol}</td><td>${e.ports}</td></tr>`,
    ),
  )}</section>
<section class="wide"><h2>NetIn mappings</h2>${table(
    'netin',
    ['host port', 'container port', 'app', 'container'],
    d.netIn.map(
      (m) =>
        html`<tr><td>${m.hostPort}</td><td>${m.containerPort}</td><td>${guidTitled(m.app.label, m.app.guid)}</td><td>${m.handle}</td></tr>`,
    ),
  )}</section>
<section><h2>Desired versions <span class="muted">(the patch log)</span></h2>${table(
    'desired',
    ['version (written)', 'from', 'change'],
    d.history.desired.map(
      (v) =>
        html`<tr><td title="${v.to}">${versionText(v.to)}</td><td title="${v.from}">${versionText(v.from)}</td><td class="reason">${v.change}</td></tr>`,
    ),
  )}</section>
<section><h2>Applied versions <span class="muted">(agent reports)</span></h2>${table(
    'applied',
    ['reported', 'applied', 'error'],
    d.history.applied.map(
      (r) =>
        html`<tr><td>${isoTime(r.at)}</td><td>${versionText(r.appliedVersion)}</td><td class="reason error">${r.error || '-'}</td></tr>`,
    ),
  )}</section>
<section class="wide"><h2>Last errors</h2>${table(
    'errors',
    ['when', 'source', 'message'],
    d.errors.map(
      (e) =>
        html`<tr><td>${e.at ? isoTime(e.at) : '-'}</td><td>${e.source}</td><td class="reason error">${e.message}</td></tr>`,
    ),
  )}</section>
</main>`;
  return page({
    title: `cell ${d.cellId}`,
    active: 'cell',
    subtitle: html`rule set ${d.meta ? `version ${versionText(d.meta.version)}, hash ${d.meta.hash}` : 'none stored'} · <a href="/dashboard/api/cells/${encodeURIComponent(d.cellId)}">JSON</a>`,
    dryRunCells,
    body,
  });
}

export function cellNotFoundPage(cellId: string, message: string, dryRunCells: readonly string[]): string {
  return page({
    title: 'unknown cell',
    active: 'cell',
    dryRunCells,
    body: html`<main><section class="wide" id="not-found"><h2>No cell ${cellId}</h2>
<p class="error" id="error">${message}</p>
<p><a href="/dashboard">Back to the cells</a></p></section></main>`,
  });
}
