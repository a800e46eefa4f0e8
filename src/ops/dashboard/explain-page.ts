/**
 * The explain page (`/dashboard/explain`): a form with the options of `cfnet explain` (from app,
 * its space and org, to app or address, its space and org, port, protocol), answered by the same
 * code (ops/explain-named.ts) and shown as the verdict line of the CLI, the steps (policies, or
 * the egress decision per container) and the cells that enforce it. A question the CLI refuses
 * (ambiguous or unknown app name, bad port) shows the CLI's message and error code.
 */
import { CfnetError, errorMessage } from '../../lib/errors.js';
import type { Explanation } from '../explain.js';
import { appText, type NamedExplainQuery, verdictLine } from '../explain-named.js';
import { versionText } from '../format.js';
import { html, page, type Raw } from './layout.js';

/** The form's fields (query parameters) and the CLI option each stands for. */
export const EXPLAIN_FIELDS = [
  ['from', '--from', 'from app (name, org/space/app or guid)'],
  ['space', '--space', 'its space'],
  ['org', '--org', 'its org'],
  ['to', '--to', 'to app, or an IP address'],
  ['toSpace', '--to-space', 'its space'],
  ['toOrg', '--to-org', 'its org'],
  ['port', '--port', 'port'],
] as const;

/** The query the form sent (null when it was not sent yet: no `from`). */
export function explainQueryOf(q: Record<string, unknown>): NamedExplainQuery | null {
  const s = (k: string) => (typeof q[k] === 'string' ? (q[k] as string).trim() : '');
  if (s('from') === '' && s('to') === '') return null;
  return {
    from: s('from'),
    space: s('space'),
    org: s('org'),
    to: s('to'),
    toSpace: s('toSpace'),
    toOrg: s('toOrg'),
    port: s('port'),
    protocol: s('protocol') || 'tcp',
  };
}

function form(q: NamedExplainQuery | null): Raw {
  const value = (k: string) => (q ? String((q as unknown as Record<string, unknown>)[k] ?? '') : '');
  return html`<form class="explain" method="get" action="/dashboard/explain" id="explain-form">
${EXPLAIN_FIELDS.map(
  ([k, flag, label]) =>
    html`<label>${label} <span class="muted">${flag}</span><input name="${k}" id="x-${k}" value="${value(k)}"${
      k === 'port' ? html` inputmode="numeric"` : ''
    }></label>`,
)}
<label>protocol <span class="muted">--protocol</span><select name="protocol" id="x-protocol">${[
    'tcp',
    'udp',
    'icmp',
  ].map(
    (p) => html`<option${(value('protocol') || 'tcp') === p ? html` selected` : ''}>${p}</option>`,
  )}</select></label>
<button type="submit" id="explain-submit">Explain</button>
</form>`;
}

function steps(x: Explanation): Raw {
  if (x.kind === 'c2c') {
    const from = appText(x.from, false);
    const to = appText(x.to, false);
    return html`<ol id="explain-steps">
${x.resolvedFrom ? html`<li>${x.resolvedFrom} is a container of app ${to}</li>` : ''}
<li>source <span title="${x.from.guid}">${from}</span>: policy tag ${x.sourceTag ?? 'none'}, ${x.sourceContainers} containers</li>
<li>destination <span title="${x.to.guid}">${to}</span>: ${x.destinationContainers} containers, ${x.query.protocol} port ${x.query.port ?? '-'}</li>
<li>${x.policies.length > 0 ? `allowed by c2c ${x.policies.map((p) => `${p.protocol} ${p.ports}`).join(', ')}` : 'no c2c policy covers the port (default deny)'}</li>
${x.otherPolicies.length > 0 ? html`<li>other policies ${from} → ${to}: ${x.otherPolicies.map((p) => `${p.protocol} ${p.ports}`).join(', ')}</li>` : ''}
</ol>`;
  }
  return html`<table id="explain-decisions"><thead><tr><th>cell</th><th>container</th><th>workload</th><th>verdict</th><th>by</th><th>rules (security groups)</th></tr></thead><tbody>${
    x.decisions.length === 0
      ? html`<tr><td class="muted empty" colspan="6">none</td></tr>`
      : x.decisions.map(
          (d) =>
            html`<tr><td><a href="/dashboard/cells/${encodeURIComponent(d.cellId)}">${d.cellId}</a></td><td>${d.handle}</td><td>${d.workload}</td><td>${
              d.by === 'not-yet-addressed' ? 'not yet addressed' : d.allowed ? 'allow' : 'deny'
            }</td><td>${d.by}</td><td class="reason">${d.rules
              .map((r) => `${r.rule}${r.groups.length ? ` [${r.groups.map((g) => g.name).join(', ')}]` : ''}`)
              .join('; ')}</td></tr>`,
        )
  }</tbody></table>`;
}

function enforcement(x: Explanation): Raw {
  return html`<h3>Enforced on</h3><table id="explain-cells"><thead><tr><th>cell</th><th>role</th><th>containers</th><th>stored</th><th>applied</th><th>rules</th><th>enforced</th><th>detail</th></tr></thead><tbody>${
    x.cells.length === 0
      ? html`<tr><td class="muted empty" colspan="8">none</td></tr>`
      : x.cells.map(
          (c) =>
            html`<tr><td><a href="/dashboard/cells/${encodeURIComponent(c.cellId)}">${c.cellId}</a></td><td>${c.role}</td><td>${c.containers.length}</td><td>${versionText(c.storedVersion)}</td><td>${versionText(c.appliedVersion)}</td><td>${c.agrees ? 'agree' : 'DISAGREE'}</td><td>${c.enforced ? 'yes' : c.storedVersion ? 'pending' : 'no'}</td><td class="reason">${c.detail}</td></tr>`,
        )
  }</tbody></table>${
    x.consistent
      ? ''
      : html`<p class="muted">Some stored rule sets do not agree with the decision yet (a reconcile is pending, or see the failed jobs).</p>`
  }`;
}

export type ExplainOutcome = { ok: Explanation } | { error: unknown } | null;

export function explainPage(
  q: NamedExplainQuery | null,
  outcome: ExplainOutcome,
  dryRunCells: readonly string[],
): string {
  let result: Raw = html``;
  if (outcome && 'ok' in outcome) {
    const x = outcome.ok;
    const verdict = x.allowed === true ? 'allowed' : x.allowed === false ? 'denied' : 'depends';
    result = html`<section class="wide" id="explain-result"><h2 id="verdict" class="verdict-${verdict}">${verdictLine(x)}</h2>${steps(x)}${enforcement(x)}</section>`;
  } else if (outcome && 'error' in outcome) {
    const err = outcome.error;
    const code = err instanceof CfnetError ? err.code : 'CFNET_INTERNAL';
    result = html`<section class="wide" id="explain-result"><p class="error" id="explain-error" data-code="${code}">cfnet explain: ${
      err instanceof CfnetError ? err.message : errorMessage(err)
    }</p><p class="muted">${code}</p></section>`;
  }
  return page({
    title: 'explain',
    active: 'explain',
    subtitle: 'can app A reach app B (or an address) on a port? — the same answer as cfnet explain',
    dryRunCells,
    body: html`<main><section class="wide">${form(q)}</section>${result}</main>`,
  });
}
