/**
 * The stylesheet every dashboard page shares, the login page, and the live convergence page: plain
 * HTML in the shared frame (layout.ts) and one script, served as they are (no build step). The
 * script renders every value with textContent (never as HTML), follows the server's snapshot
 * stream (Server-Sent Events) and falls back to polling while the stream is down. The other pages
 * are rendered on the server (cell-page.ts, explain-page.ts) or draw charts (charts-page.ts).
 */

import { dryRunText, escapeHtml, html, page, Raw } from './layout.js';

export const CSS = `
:root { --fg:#1d2733; --muted:#66717d; --line:#dde2e7; --ok:#1f7a4d; --warn:#a86400; --bad:#b3261e; --bg:#f6f7f9; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display:flex; gap:1rem; align-items:center; padding:.6rem 1rem; background:#fff; border-bottom:1px solid var(--line); }
header h1 { font-size:1.1rem; margin:0; }
header .grow { flex:1; color: var(--muted); }
header a, header button { color: var(--fg); }
main { padding: 1rem; display:grid; gap:1rem; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); }
section { background:#fff; border:1px solid var(--line); border-radius:6px; padding:.8rem 1rem; overflow:auto; }
section.wide { grid-column: 1 / -1; }
h2 { font-size:1rem; margin:0 0 .6rem; }
table { border-collapse: collapse; width:100%; }
th, td { text-align:left; padding:.25rem .5rem; border-bottom:1px solid var(--line); white-space:nowrap; }
td.reason { white-space: normal; max-width: 40rem; }
th { color: var(--muted); font-weight:600; font-size:.8rem; text-transform:uppercase; }
.counts { display:flex; flex-wrap:wrap; gap:.5rem; }
.count { border:1px solid var(--line); border-radius:4px; padding:.3rem .6rem; min-width:6rem; }
.count b { display:block; font-size:1.2rem; }
.state-converged, .state-completed { color: var(--ok); }
.state-lagging, .state-pending, .state-no-agent, .state-active, .state-waiting { color: var(--warn); }
.state-error, .state-stale, .state-degraded, .state-failed { color: var(--bad); }
.bar { background:#4a78b5; height:.8rem; display:inline-block; vertical-align:middle; }
.muted { color: var(--muted); }
#live.ok { color: var(--ok); } #live.down { color: var(--bad); }
form.login { max-width: 24rem; margin: 10vh auto; background:#fff; padding:1.5rem; border:1px solid var(--line); border-radius:6px; display:grid; gap:.8rem; }
form.login input { font: inherit; padding:.4rem; }
.error { color: var(--bad); }
header nav { display:flex; gap:.8rem; }
header nav a.active { font-weight:600; text-decoration:none; }
.banner { margin:0; padding:.5rem 1rem; background:#fff4e0; border-bottom:1px solid #e8c88a; color: var(--warn); font-weight:600; }
.named { border-bottom: 1px dotted var(--muted); cursor: help; }
form.explain { display:grid; grid-template-columns: repeat(auto-fit, minmax(14rem, 1fr)); gap:.6rem; align-items:end; }
form.explain label { display:grid; gap:.2rem; }
form.explain input, form.explain select { font: inherit; padding:.3rem; }
.verdict-allowed { color: var(--ok); } .verdict-denied { color: var(--bad); } .verdict-depends { color: var(--warn); }
.chart { min-height: 300px; }
.u-legend th { text-transform: none; font-size: .85rem; }
`;

export function loginPage(opts: { next: string; error?: string; disabled?: boolean }): string {
  const body = opts.disabled
    ? `<form class="login"><h1>cfnet dashboard</h1><p class="error" id="error">The dashboard is disabled: no operator token is configured (setting <code>operatorToken</code>, environment <code>CFNET_OPERATOR_TOKEN</code>).</p></form>`
    : `<form class="login" method="post" action="/dashboard/login">
  <h1>cfnet dashboard</h1>
  <label for="token">Operator token</label>
  <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
  <input type="hidden" name="next" value="${escapeHtml(opts.next)}">
  ${opts.error ? `<p class="error" id="error">${escapeHtml(opts.error)}</p>` : ''}
  <button type="submit" id="login">Log in</button>
</form>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cfnet dashboard: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/dashboard/assets/app.css"></head>
<body>${body}</body></html>`;
}

/** The live convergence page: filled by SCRIPT from the snapshot stream. */
export function convergencePage(): string {
  return page({
    title: 'convergence',
    active: 'convergence',
    subtitle: html`<span id="namespace"></span> · leader <span id="leader">-</span> · updated <span id="updated">-</span> · <span id="live">connecting</span>`,
    body: new Raw(`<p class="error" id="publish-warning" hidden></p>
<main>
  <section class="wide"><h2>Reconcile queue <span id="paused" class="error"></span></h2><div class="counts" id="counts"></div></section>
  <section><h2>Cells by lag <span class="muted" id="cell-states"></span></h2>
    <table id="cells"><thead><tr><th>cell</th><th>desired</th><th>applied</th><th>lag</th><th>state</th><th>reported</th><th>error</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Reconcile latency (event → done) <span class="muted" id="latency-summary"></span></h2>
    <table id="latency"><thead><tr><th>bucket</th><th>jobs</th><th></th></tr></thead><tbody></tbody></table>
    <p class="muted" id="runtime-summary"></p></section>
  <section class="wide"><h2>Failed jobs</h2><p id="retry-message" class="muted"></p>
    <table id="failed"><thead><tr><th>job</th><th>cell</th><th>attempts</th><th>failed</th><th>reason</th><th></th></tr></thead><tbody></tbody></table></section>
  <section><h2>Recently run jobs</h2>
    <table id="recent"><thead><tr><th>job</th><th>state</th><th>cell</th><th>finished</th><th>event → done</th><th>triggers</th></tr></thead><tbody></tbody></table></section>
  <section class="wide"><h2>Rejected input <span class="muted">(left out by itself; everything else applied)</span></h2>
    <table id="rejected"><thead><tr><th>seen</th><th>source</th><th>reason</th><th>subject</th><th>cell</th><th>field</th><th>value</th><th>message</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Event journal</h2>
    <table id="journal"><thead><tr><th>seen</th><th>type</th><th>subject</th><th>cells</th><th>jobs</th></tr></thead><tbody></tbody></table></section>
</main>
`),
    scripts: ['/dashboard/assets/app.js'],
  });
}

export const SCRIPT = `'use strict';
(function () {
  var $ = function (id) { return document.getElementById(id); };
  function dur(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return '-';
    if (ms < 1000) return Math.round(ms) + 'ms';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + 's';
    var s = Math.round(ms / 1000);
    if (s < 3600) return Math.floor(s / 60) + 'm' + (s % 60 ? (s % 60) + 's' : '');
    return Math.floor(s / 3600) + 'h' + Math.floor((s % 3600) / 60) + 'm';
  }
  function time(ms) { return ms ? new Date(ms).toLocaleTimeString() : '-'; }
  function ago(ms, now) { return ms ? dur(Math.max(0, now - ms)) + ' ago' : '-'; }
  // a rule-set version is its write time (ms): shown as versionText (ops/format.ts) shows it
  function ver(v, now) {
    if (!v) return '-';
    var iso = new Date(v).toISOString();
    return Math.abs(now - v) < 86400000 ? iso.slice(11) : iso.replace('T', ' ');
  }
  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text === undefined || text === null || text === '' ? '-' : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  // the same banner text as the server-rendered pages (layout.ts)
  var dryRunText = ${dryRunText.toString()};
  function cellLink(tr, cellId) {
    var td = cell(tr, '');
    if (!cellId) { td.textContent = '-'; return td; }
    var a = document.createElement('a');
    a.href = '/dashboard/cells/' + encodeURIComponent(cellId);
    a.textContent = cellId;
    td.replaceChildren(a);
    return td;
  }
  // an app or space by its org/space/app name, its guid as the tooltip (the guid when unnamed)
  function named(parent, guid, labels) {
    var span = document.createElement('span');
    span.textContent = labels[guid] || guid;
    if (labels[guid]) { span.title = guid; span.className = 'named'; }
    parent.appendChild(span);
  }
  function subject(td, e, labels) {
    td.textContent = '';
    var parts = [];
    if (e.subject.guid) parts.push(function () { td.appendChild(document.createTextNode(e.subject.guid)); });
    (e.subject.apps || []).forEach(function (a, i) {
      parts.push(function () { if (i === 0) td.appendChild(document.createTextNode('app ')); named(td, a, labels); });
    });
    (e.subject.spaces || []).forEach(function (sp, i) {
      parts.push(function () { if (i === 0) td.appendChild(document.createTextNode('space ')); named(td, sp, labels); });
    });
    parts.forEach(function (p, i) { if (i > 0) td.appendChild(document.createTextNode(' ')); p(); });
    if (parts.length === 0) td.textContent = '-';
  }
  function fill(id, rows, render) {
    var body = $(id).tBodies[0];
    var trs = rows.map(function (r) { var tr = document.createElement('tr'); render(tr, r); return tr; });
    if (trs.length === 0) {
      // an empty table says so, rather than looking like a page that did not load
      var tr = document.createElement('tr');
      var td = cell(tr, 'none', 'muted empty');
      td.colSpan = $(id).tHead.rows[0].cells.length;
      trs.push(tr);
    }
    body.replaceChildren.apply(body, trs);
  }
  function render(s) {
    $('namespace').textContent = s.namespace;
    $('leader').textContent = s.leader || 'none';
    var pw = $('publish-warning');
    var waiting = s.publish && s.publish.state === 'waiting';
    pw.hidden = !waiting;
    pw.textContent = waiting ? 'Rule sets are NOT being published: the leader waits for ' + s.publish.missing.join(', ') +
      ' (not listed since the controller state was lost) since ' + time(s.publish.since) + '. Agents keep enforcing what they have.' : '';
    $('updated').textContent = time(s.at);
    var dry = s.dryRunCells || [];
    $('dry-run-banner').hidden = dry.length === 0;
    $('dry-run-banner').textContent = dry.length ? dryRunText(dry.length) : '';
    $('dry-run-banner').title = dry.join(', ');
    var labels = s.labels || {};
    var q = s.queue;
    var counts = ['waiting', 'prioritized', 'delayed', 'active', 'failed', 'completed'].map(function (k) {
      var d = document.createElement('div');
      d.className = 'count state-' + k;
      d.id = 'count-' + k;
      var b = document.createElement('b');
      b.textContent = String(q.counts[k]);
      d.appendChild(b);
      d.appendChild(document.createTextNode(k));
      return d;
    });
    var w = document.createElement('div');
    w.className = 'count';
    var wb = document.createElement('b');
    wb.textContent = q.workers === null ? '?' : String(q.workers);
    w.appendChild(wb);
    w.appendChild(document.createTextNode('workers'));
    counts.push(w);
    $('counts').replaceChildren.apply($('counts'), counts);
    $('paused').textContent = q.paused ? 'PAUSED' : '';
    $('cell-states').textContent = Object.keys(s.states).filter(function (k) { return s.states[k] > 0; })
      .map(function (k) { return s.states[k] + ' ' + k; }).join(', ');
    fill('cells', s.cells, function (tr, c) {
      tr.dataset.cell = c.cellId;
      cellLink(tr, c.cellId); cell(tr, ver(c.desired, s.at)); cell(tr, ver(c.applied, s.at));
      cell(tr, c.lagMs > 0 ? dur(c.lagMs) : '0'); cell(tr, c.state, 'state-' + c.state);
      tr.lastChild.title = s.stateMeanings[c.state] || '';
      cell(tr, ago(c.reportedAt, s.at)); cell(tr, c.error, 'reason');
    });
    var l = s.latency.eventToDone;
    $('latency-summary').textContent = l.count === 0 ? '(no finished jobs)' :
      'p50 ' + dur(l.p50) + ' · p90 ' + dur(l.p90) + ' · p99 ' + dur(l.p99) + ' · max ' + dur(l.max) + ' · ' + l.count + ' jobs';
    var most = Math.max.apply(null, l.buckets.map(function (b) { return b.count; }).concat([1]));
    fill('latency', l.buckets.filter(function (b) { return b.count > 0; }), function (tr, b) {
      cell(tr, b.label); cell(tr, b.count);
      var td = cell(tr, '');
      var bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = Math.max(2, Math.round((b.count / most) * 240)) + 'px';
      td.replaceChildren(bar);
    });
    var r = s.latency.runTime;
    $('runtime-summary').textContent = r.count === 0 ? '' : 'run time p50 ' + dur(r.p50) + ' · p99 ' + dur(r.p99);
    fill('failed', s.failed, function (tr, j) {
      tr.dataset.jobId = j.id;
      cell(tr, '#' + j.id); cellLink(tr, j.cellId); cell(tr, j.attemptsMade);
      cell(tr, time(j.finishedAt)); cell(tr, j.failedReason, 'reason');
      var td = cell(tr, '');
      var btn = document.createElement('button');
      btn.type = 'button';
      btn.textContent = 'Retry';
      btn.className = 'retry';
      btn.addEventListener('click', function () { retry(j.id, btn); });
      td.replaceChildren(btn);
    });
    fill('recent', s.recent, function (tr, j) {
      tr.dataset.jobId = j.id;
      var t = j.triggers && j.triggers.length ? j.triggers.join(', ') : '';
      cell(tr, '#' + j.id); cell(tr, j.state, 'state-' + j.state); cellLink(tr, j.cellId);
      cell(tr, time(j.finishedAt)); cell(tr, j.latencyMs === null ? '-' : dur(j.latencyMs)); cell(tr, t, 'reason');
    });
    fill('rejected', s.rejected || [], function (tr, e) {
      var d = e.detail || {};
      cell(tr, time(e.at)); cell(tr, e.source); cell(tr, d.reason, 'error'); subject(cell(tr, ''), e, labels);
      cell(tr, e.cells.join(', ')); cell(tr, d.field); cell(tr, d.value, 'reason'); cell(tr, d.message, 'reason');
    });
    fill('journal', s.journal, function (tr, e) {
      cell(tr, time(e.at)); cell(tr, e.count > 1 ? e.type + ' \u00d7' + e.count : e.type);
      var td = cell(tr, '', 'reason');
      if (e.count > 1) td.textContent = e.count + ' reports from ' + (e.cells.length > 3 ? e.cells.length + ' cells' : e.cells.join(', '));
      else subject(td, e, labels);
      cell(tr, e.cells.length > 3 ? e.cells.length + ' cells' : e.cells.join(', ')); cell(tr, e.jobIds.length);
    });
  }
  function snapshot() {
    return fetch('/dashboard/api/snapshot', { headers: { accept: 'application/json' } }).then(function (res) {
      if (res.status === 401) { location.href = '/dashboard/login'; return; }
      return res.json().then(render);
    });
  }
  function retry(id, btn) {
    btn.disabled = true;
    fetch('/dashboard/api/jobs/' + encodeURIComponent(id) + '/retry', { method: 'POST' }).then(function (res) {
      return res.json().then(function (body) {
        $('retry-message').textContent = res.ok ? 'job #' + id + ' retried' : (body.error && body.error.message) || 'retry failed';
        return snapshot();
      });
    }).catch(function (err) { $('retry-message').textContent = String(err); btn.disabled = false; });
  }
  var poll = null;
  function live(ok) {
    $('live').textContent = ok ? 'live' : 'reconnecting (polling)';
    $('live').className = ok ? 'ok' : 'down';
    if (ok && poll) { clearInterval(poll); poll = null; }
    if (!ok && !poll) poll = setInterval(function () { snapshot().catch(function () {}); }, 3000);
  }
  var es = new EventSource('/dashboard/api/stream');
  es.addEventListener('snapshot', function (ev) { live(true); render(JSON.parse(ev.data)); });
  es.addEventListener('error', function () { live(false); });
  snapshot().catch(function () {});
})();
`;
