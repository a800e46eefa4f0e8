/** Plain-text tables of the CLI (operator tools and `cfnet dataplane`): one look everywhere. */

/** A left-aligned text table; `columns` picks and orders the keys, headers upper-cased. */
export function table<T extends object>(
  rows: readonly T[],
  columns: ReadonlyArray<keyof T & string>,
  headers: Partial<Record<keyof T & string, string>> = {},
): string {
  const head = columns.map((c) => (headers[c] ?? c).toUpperCase());
  const body = rows.map((r) => columns.map((c) => cellText((r as Record<string, unknown>)[c])));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...body.map(line)].join('\n');
}

function cellText(v: unknown): string {
  if (v === undefined || v === null || v === '') return '-';
  if (Array.isArray(v)) return v.join(',') || '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v).replace(/\s+/g, ' ');
}
