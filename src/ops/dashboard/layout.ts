/**
 * The frame every dashboard page shares: the header with its navigation, the banners (rule sets
 * not published, agents in dry-run) and HTML escaping. Server-rendered pages (cell, explain) fill
 * the banners here; the live convergence page fills the same elements from its snapshot.
 */

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

/** Tagged template: interpolated values are escaped, except `Raw` ones (already HTML). */
export class Raw {
  constructor(readonly html: string) {}
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Raw {
  let out = strings[0]!;
  values.forEach((v, i) => {
    const part = (x: unknown): string =>
      x instanceof Raw
        ? x.html
        : Array.isArray(x)
          ? x.map(part).join('')
          : x === null || x === undefined || x === false
            ? ''
            : escapeHtml(String(x));
    out += part(v) + strings[i + 1]!;
  });
  return new Raw(out);
}

export type NavItem = 'convergence' | 'charts' | 'explain' | 'cell';

const NAV: ReadonlyArray<[NavItem, string, string, string]> = [
  ['convergence', '/dashboard', 'Convergence', 'nav-convergence'],
  ['charts', '/dashboard/charts', 'Charts', 'nav-charts'],
  ['explain', '/dashboard/explain', 'Explain', 'nav-explain'],
];

/** The dry-run banner's text for `n` cells (also built by the live page's script). */
export function dryRunText(n: number): string {
  return `${n} ${n === 1 ? 'cell runs its agent' : 'cells run their agents'} in dry-run: rules are computed and logged, nothing is enforced there.`;
}

export interface PageOptions {
  title: string;
  active: NavItem;
  /** Text after the title (namespace, live state…). */
  subtitle?: Raw | string;
  /** Cells in dry-run (the banner shows when any). */
  dryRunCells?: readonly string[];
  body: Raw;
  /** Extra stylesheets and scripts (same-origin paths). */
  styles?: string[];
  scripts?: string[];
}

export function page(o: PageOptions): string {
  const dry = o.dryRunCells ?? [];
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cfnet: ${o.title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/dashboard/assets/app.css">${(o.styles ?? []).map((s) => html`<link rel="stylesheet" href="${s}">`)}</head>
<body>
<header>
  <h1>cfnet ${o.title}</h1>
  <span class="grow">${o.subtitle ?? ''}</span>
  <nav>${NAV.map(([k, href, text, id]) => html`<a href="${href}" id="${id}"${new Raw(k === o.active ? ' class="active" aria-current="page"' : '')}>${text}</a>`)}<a href="/dashboard/queues/" id="queues-link">Queues (bull-board)</a></nav>
  <form method="post" action="/dashboard/logout"><button type="submit" id="logout">Log out</button></form>
</header>
<p class="banner" id="dry-run-banner" title="${dry.join(', ')}"${new Raw(dry.length === 0 ? ' hidden' : '')}>${dry.length > 0 ? dryRunText(dry.length) : ''}</p>
${o.body}
${(o.scripts ?? []).map((s) => html`<script src="${s}"></script>`)}
</body></html>`.html;
}
