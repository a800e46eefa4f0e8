/**
 * The demo's live view as text, fitted to a width (pure: snapshot + history + width → lines).
 *
 * A terminal wraps a line longer than its width, and the in-place redraw (which moves the cursor up
 * by the number of lines it wrote) then leaves garbage behind: so every line here is at most
 * `width` characters. Columns go in order of what an operator needs least: the subnet and the
 * versions' times first, then the maximum lag; at 80 columns or less (or when even that does not
 * fit) each cell gets one short line: cell, state, lag, applied/desired.
 *
 * Versions: a rule-set version is the Redis time (ms) of its write (src/state/lua/ruleset-write.lua),
 * a 13-digit number no one reads. The view shows `#N`, the N-th desired version the demo saw for
 * that cell, and (when there is room) the version's time of day, UTC. An applied version the demo
 * never saw desired (written and superseded between two looks) shows as `#N+`: after `#N`; one
 * older than all it saw shows as `old`.
 */
import { type CellHistory, type CellView, percentile, type Snapshot } from './convergence.js';

/** Width of the view when the output is not a terminal (a pipe, a log, a test). */
export const DEFAULT_VIEW_WIDTH = 100;

/** At this width or less, one short line per cell. */
export const COMPACT_WIDTH = 80;

/** `text` cut to `width` characters, the cut marked with `…`. */
export function clip(text: string, width: number): string {
  if (text.length <= width) return text;
  if (width <= 0) return '';
  return `${text.slice(0, width - 1)}…`;
}

/** The view's width: the terminal's when there is one, else the default. */
export function viewWidth(columns: number | undefined): number {
  return columns !== undefined && Number.isFinite(columns) && columns > 0 ? columns : DEFAULT_VIEW_WIDTH;
}

/** `#N` of `version` among the desired versions seen for the cell (see the header comment). */
export function versionLabel(version: number, h: CellHistory | undefined): string {
  if (!version) return '-';
  const seen = h?.desiredSeen ?? [];
  const dropped = h?.desiredDropped ?? 0;
  const i = seen.indexOf(version);
  if (i >= 0) return `#${dropped + i + 1}`;
  const below = seen.filter((v) => v < version).length;
  return below === 0 ? 'old' : `#${dropped + below}+`;
}

/** The version's time of day (UTC, ms): a version is the time of its write. */
export function versionTime(version: number): string {
  return version ? new Date(version).toISOString().slice(11, 23) : '';
}

/** `230ms`, `13.2s`, `2m05s`. */
export function formatLag(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** The state word and, for an error, its first line apart (it is what gets cut); a degraded cell's overlay. */
function stateParts(c: CellView): { word: string; detail: string } {
  if (c.state === 'error') return { word: 'error', detail: c.error.split('\n')[0] ?? '' };
  if (c.state === 'degraded') return { word: 'degraded', detail: c.overlay ?? '' };
  return { word: c.state, detail: '' };
}

interface Column {
  head: string;
  right: boolean;
  value: (c: CellView, h: CellHistory | undefined) => string;
}

const COLUMNS = {
  cell: { head: 'cell', right: false, value: (c) => c.cellId },
  subnet: { head: 'subnet', right: false, value: (c) => c.agent?.subnet || '-' },
  desiredFull: {
    head: 'desired',
    right: false,
    value: (c, h) => `${versionLabel(c.desired, h)} ${versionTime(c.desired)}`.trim(),
  },
  appliedFull: {
    head: 'applied',
    right: false,
    value: (c, h) => `${versionLabel(c.applied, h)} ${versionTime(c.applied)}`.trim(),
  },
  desired: { head: 'desired', right: true, value: (c, h) => versionLabel(c.desired, h) },
  applied: { head: 'applied', right: true, value: (c, h) => versionLabel(c.applied, h) },
  lag: { head: 'lag', right: true, value: (c) => formatLag(c.lagMs) },
  maxLag: { head: 'max lag', right: true, value: (_c, h) => formatLag(h?.maxLagMs ?? 0) },
  changes: { head: 'changes', right: true, value: (_c, h) => `${h?.versionsApplied ?? 0}x` },
  rulesFor: {
    head: 'rules for',
    right: true,
    value: (c) => (c.agent ? `${c.agent.containers} ctrs` : 'agent ?'),
  },
} satisfies Record<string, Column>;

/** Table layouts, widest first; the state is always the last column. */
const LAYOUTS: readonly (readonly Column[])[] = [
  [
    COLUMNS.cell,
    COLUMNS.subnet,
    COLUMNS.desiredFull,
    COLUMNS.appliedFull,
    COLUMNS.lag,
    COLUMNS.maxLag,
    COLUMNS.changes,
    COLUMNS.rulesFor,
  ],
  [
    COLUMNS.cell,
    COLUMNS.desired,
    COLUMNS.applied,
    COLUMNS.lag,
    COLUMNS.maxLag,
    COLUMNS.changes,
    COLUMNS.rulesFor,
  ],
  [COLUMNS.cell, COLUMNS.desired, COLUMNS.applied, COLUMNS.lag, COLUMNS.changes, COLUMNS.rulesFor],
];

const GAP = '  ';

/** Rows of `layout` (head first), or null when a row's state word would not fit in `width`. */
function table(
  layout: readonly Column[],
  cells: readonly CellView[],
  history: ReadonlyMap<string, CellHistory>,
  width: number,
): string[] | null {
  const values = cells.map((c) => layout.map((col) => col.value(c, history.get(c.cellId))));
  const widths = layout.map((col, i) => Math.max(col.head.length, ...values.map((v) => v[i]!.length)));
  const line = (cols: readonly string[]) =>
    cols.map((v, i) => (layout[i]!.right ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join(GAP);
  const fixed = widths.reduce((a, b) => a + b, 0) + GAP.length * layout.length;
  const states = cells.map(stateParts);
  if (fixed + Math.max('state'.length, ...states.map((s) => s.word.length)) > width) return null;
  const rows = [`${line(layout.map((c) => c.head))}${GAP}state`];
  cells.forEach((_c, i) => {
    const { word, detail } = states[i]!;
    const state = detail ? clip(`${word}: ${detail}`, Math.max(word.length, width - fixed)) : word;
    rows.push(`${line(values[i]!)}${GAP}${state}`);
  });
  return rows;
}

/** One short line per cell: cell, state, lag, applied/desired (and an error's text if room). */
function compact(
  cells: readonly CellView[],
  history: ReadonlyMap<string, CellHistory>,
  width: number,
): string[] {
  const rows = cells.map((c) => {
    const h = history.get(c.cellId);
    const s = stateParts(c);
    return [
      c.cellId,
      s.word,
      formatLag(c.lagMs),
      `${versionLabel(c.applied, h)}/${versionLabel(c.desired, h)}`,
      s.detail,
    ];
  });
  const head = ['cell', 'state', 'lag', 'applied/desired', ''];
  const widths = [0, 1, 2, 3].map((i) => Math.max(head[i]!.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: readonly string[]) =>
    clip(
      [
        r[0]!.padEnd(widths[0]!),
        r[1]!.padEnd(widths[1]!),
        r[2]!.padStart(widths[2]!),
        r[3]!.padEnd(widths[3]!),
        r[4]!,
      ]
        .join(GAP)
        .trimEnd(),
      width,
    );
  return [line(head), ...rows.map(line)];
}

/** `converged n/m cells` with the write → enforce latency, shortened to fit. */
function summary(s: Snapshot, history: ReadonlyMap<string, CellHistory>, width: number): string {
  const ok = s.cells.filter((c) => c.state === 'converged').length;
  const all = [...history.values()].flatMap((h) => h.enforceMs);
  if (all.length === 0) return clip(`converged ${ok}/${s.cells.length} cells`, width);
  const p50 = percentile(all, 0.5);
  const p99 = percentile(all, 0.99);
  const long = `converged ${ok}/${s.cells.length} cells; controller write → enforced: p50 ${p50} ms, p99 ${p99} ms (${all.length} version${all.length === 1 ? '' : 's'})`;
  if (long.length <= width) return long;
  return clip(`converged ${ok}/${s.cells.length}; write→enforced p50 ${p50} ms, p99 ${p99} ms`, width);
}

/**
 * The table of one snapshot plus a summary line, every line at most `width` characters (no
 * colours: it also goes to logs and pipes).
 */
export function renderFrame(
  s: Snapshot,
  history: ReadonlyMap<string, CellHistory>,
  width: number = DEFAULT_VIEW_WIDTH,
): string[] {
  let rows: string[] | null = null;
  if (width > COMPACT_WIDTH) {
    for (const layout of LAYOUTS) {
      rows = table(layout, s.cells, history, width);
      if (rows) break;
    }
  }
  return [...(rows ?? compact(s.cells, history, width)), summary(s, history, width)];
}

/** What the churn has done so far, as the view's first line. */
export interface ChurnLine {
  /** Seconds since the demo's churn started, and the planned duration (0: until Ctrl-C). */
  elapsedS: number;
  durationS: number;
  phase?: string;
  churn: { applied: number; failed: number; byKind: Record<string, number> } | null;
}

/** `t=12s/60s (phase)  churn: N changes (kind n, …), k refused`, cut to `width`. */
export function churnHeader(h: ChurnLine, width: number = DEFAULT_VIEW_WIDTH): string {
  const st = h.churn;
  const kinds = st
    ? Object.entries(st.byKind)
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')
    : '';
  const what = st
    ? `${st.applied} changes${st.failed ? `, ${st.failed} refused` : ''}${kinds ? ` (${kinds})` : ''}`
    : 'off';
  const t = `t=${h.elapsedS}s${h.durationS > 0 ? `/${h.durationS}s` : ''}${h.phase ? ` (${h.phase})` : ''}`;
  return clip(`${t}  churn: ${what}`, width);
}
