/**
 * The charts page (`/dashboard/charts`): cell lag (max, p90, p50) and the reconcile queue (backlog,
 * oldest unfinished job) over time, drawn with uPlot (served from node_modules by the dashboard,
 * no CDN) from the dashboard's history (history.ts, `/dashboard/api/history`), refreshed every
 * sample interval. Before the first sample the page says there is no data yet.
 */
import { html, page } from './layout.js';

export function chartsPage(dryRunCells: readonly string[]): string {
  return page({
    title: 'charts',
    active: 'charts',
    subtitle: html`history of this controller replica · <span id="history-span">-</span>`,
    dryRunCells,
    styles: ['/dashboard/assets/uplot.css'],
    scripts: ['/dashboard/assets/uplot.js', '/dashboard/assets/charts.js'],
    body: html`<main>
<section class="wide"><h2>Cell lag</h2><p class="muted empty-chart" id="lag-empty">No data yet: the first sample comes within one sample interval.</p><div class="chart" id="lag-chart"></div></section>
<section class="wide"><h2>Reconcile queue</h2><p class="muted empty-chart" id="queue-empty">No data yet: the first sample comes within one sample interval.</p><div class="chart" id="queue-chart"></div></section>
</main>`,
  });
}

/** The page's script: fetches the history, draws (or redraws) both charts with uPlot. */
export const CHARTS_SCRIPT = `'use strict';
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var charts = {};
  function seconds(ms) { return ms / 1000; }
  function axisSeconds(u, vals) { return vals.map(function (v) { return v + 's'; }); }
  function draw(id, series, data) {
    var el = $(id + '-chart');
    var empty = data[0].length === 0;
    $(id + '-empty').hidden = !empty;
    el.hidden = empty;
    el.dataset.points = String(data[0].length);
    if (empty) return;
    if (charts[id]) { charts[id].setData(data); return; }
    charts[id] = new uPlot({
      width: Math.max(320, el.clientWidth - 16), height: 260,
      series: [{}].concat(series),
      axes: [{}, { values: series[0].unit === 's' ? axisSeconds : undefined }].concat(
        series.some(function (s) { return s.scale === 'right'; }) ? [{ side: 1, scale: 'right', grid: { show: false } }] : []),
      scales: { x: { time: true } },
    }, data, el);
  }
  function render(h) {
    var s = h.samples;
    var t = s.map(function (x) { return Math.round(x.at / 1000); });
    $('history-span').textContent = s.length + ' samples every ' + Math.round(h.intervalMs / 1000) + 's (keeps ' + h.capacity + ')';
    draw('lag', [
      { label: 'max lag (s)', stroke: '#b3261e', width: 2, unit: 's' },
      { label: 'p90 lag (s)', stroke: '#a86400', unit: 's' },
      { label: 'p50 lag (s)', stroke: '#4a78b5', unit: 's' },
      { label: 'cells behind', stroke: '#66717d', dash: [4, 4], scale: 'right' },
    ], [t, s.map(function (x) { return seconds(x.maxLagMs); }), s.map(function (x) { return seconds(x.p90LagMs); }),
      s.map(function (x) { return seconds(x.p50LagMs); }), s.map(function (x) { return x.behind; })]);
    draw('queue', [
      { label: 'backlog (jobs)', stroke: '#4a78b5', width: 2 },
      { label: 'oldest job age (s)', stroke: '#b3261e', scale: 'right' },
    ], [t, s.map(function (x) { return x.backlog; }), s.map(function (x) { return seconds(x.oldestJobAgeMs); })]);
  }
  function load() {
    return fetch('/dashboard/api/history', { headers: { accept: 'application/json' } }).then(function (res) {
      if (res.status === 401) { location.href = '/dashboard/login?next=/dashboard/charts'; return; }
      return res.json().then(function (h) { render(h); return h; });
    });
  }
  load().then(function (h) {
    setInterval(function () { load().catch(function () {}); }, Math.max(1000, (h && h.intervalMs) || 10000));
  }).catch(function () {});
})();
`;
