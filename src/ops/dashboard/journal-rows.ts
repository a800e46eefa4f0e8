/**
 * The dashboard's journal rows: agent status reports arrive from every cell on every change of
 * applied version, and would push every other entry off a short list. A run of consecutive
 * `agent-report` entries becomes one row saying how many reports from which cells it stands for.
 */
import type { JournalEntry } from '../journal.js';

export interface JournalRow extends JournalEntry {
  /** How many entries this row stands for (1, or more for folded agent reports). */
  count: number;
}

/** `entries` (newest first) with runs of agent reports folded, at most `limit` rows. */
export function foldAgentReports(entries: readonly JournalEntry[], limit: number): JournalRow[] {
  const rows: JournalRow[] = [];
  for (const e of entries) {
    const last = rows.at(-1);
    if (e.type === 'agent-report' && last?.type === 'agent-report') {
      last.count++;
      for (const c of e.cells) if (!last.cells.includes(c)) last.cells.push(c);
      continue;
    }
    if (rows.length === limit) break;
    rows.push({ ...e, cells: [...e.cells], count: 1 });
  }
  for (const r of rows) if (r.count > 1) r.cells.sort();
  return rows;
}
