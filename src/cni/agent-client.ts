/**
 * Telling the cell agent about attachments: one small JSON POST on its local unix socket with a
 * short timeout. Best effort by design: ADD and DEL succeed when the agent is down (the agent
 * also reads the datastore and the kernel table when it starts).
 */
import { request } from 'node:http';
import type { CellContainer, EgressRule } from '../model/types.js';

export const AGENT_EVENTS_PATH = '/v1/cni/events';

export interface CniEvent {
  type: 'add' | 'del';
  /** The attachment's name (src/cni/attachment.ts): the container ID for eth0, the agent's handle. */
  handle: string;
  /** CNI_CONTAINERID (absent from events of older plugins: then `handle`). */
  containerId?: string;
  ifname: string;
  /** Container address ('' for a DEL of an unknown container). */
  ip: string;
  network: string;
  /** Garden metadata (ADD only). */
  metadata?: Record<string, unknown>;
  /** What the dataplane got (ADD only). */
  container?: CellContainer;
  egressRules?: EgressRule[];
  at: string;
}

export type NotifyOutcome = { ok: true; status: number } | { ok: false; error: string };

/** POSTs the event; resolves (never rejects) with what happened. */
export function postEvent(socketPath: string, event: CniEvent, timeoutMs: number): Promise<NotifyOutcome> {
  return new Promise((resolve) => {
    const body = JSON.stringify(event);
    let settled = false;
    const done = (o: NotifyOutcome) => {
      if (!settled) {
        settled = true;
        resolve(o);
      }
    };
    const req = request(
      {
        socketPath,
        path: AGENT_EVENTS_PATH,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs,
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode && res.statusCode < 300
            ? done({ ok: true, status: res.statusCode })
            : done({ ok: false, error: `agent answered HTTP ${res.statusCode}` }),
        );
        res.on('error', (e) => done({ ok: false, error: e.message }));
      },
    );
    req.on('timeout', () => {
      req.destroy(new Error(`no answer within ${timeoutMs} ms`));
    });
    req.on('error', (e) => done({ ok: false, error: e.message }));
    req.end(body);
  });
}
