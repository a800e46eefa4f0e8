/**
 * The cell's own identity: its private key never leaves the cell, and no cell holds a key that
 * could sign for another (docs/security.md).
 *  - `ready()`: use the certificate and key on disk when they belong together, name this cell and
 *    are valid; otherwise make a new key and CSR and ask the controller to sign it with the cell's
 *    bootstrap token (retried with backoff until the controller answers).
 *  - `run()`: renew between 60 % and 75 % of the certificate's lifetime (spread so that cells do not
 *    renew together), authenticated by the certificate itself, or by the token once it has expired.
 *    A fresh key each time. Files are replaced atomically (key 0600), and the controller client
 *    switches to the new certificate for new requests while a long-poll in flight finishes on its
 *    connection: no restart, nothing dropped.
 */
import { createPrivateKey, generateKeyPair, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { backoffDelay, sleep } from '../lib/backoff.js';
import { makeCsr } from '../lib/csr.js';
import { errorMessage, ValidationError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { type ControllerClient, ControllerRequestError } from './client.js';
import type { AgentMetrics } from './metrics.js';
import { writeFileAtomic } from './state.js';

const generateKeyPairAsync = promisify(generateKeyPair);

export interface AgentIdentityOptions {
  cellId: string;
  certFile: string;
  keyFile: string;
  /** File holding the cell's bootstrap token; '' = none (renewals only). */
  tokenFile: string;
  client: ControllerClient;
  logger: Logger;
  metrics?: AgentMetrics;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  random?: () => number;
  now?: () => number;
}

export interface HeldCertificate {
  cert: string;
  key: string;
  serial: string;
  notBefore: number;
  notAfter: number;
  /** When this agent received it (its notBefore for one read from disk). */
  obtainedAt: number;
}

/** Why a certificate/key pair cannot be used for `cellId` at `now`, or null when it can. */
export function unusableBecause(cert: string, key: string, cellId: string, now: number): string | null {
  let x: X509Certificate;
  try {
    x = new X509Certificate(cert);
  } catch (err) {
    return `certificate unreadable: ${errorMessage(err)}`;
  }
  try {
    if (!x.checkPrivateKey(createPrivateKey(key))) return 'the key does not belong to the certificate';
  } catch (err) {
    return `key unreadable: ${errorMessage(err)}`;
  }
  const names = (x.subjectAltName ?? '').split(/,\s*/);
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(x.subject)?.[1];
  if (!names.includes(`DNS:${cellId}.cell.cfnet`) && cn !== cellId)
    return `the certificate names another cell`;
  if (Date.parse(x.validTo) <= now) return 'the certificate has expired';
  return null;
}

function held(cert: string, key: string, obtainedAt?: number): HeldCertificate {
  const x = new X509Certificate(cert);
  const notBefore = Date.parse(x.validFrom);
  return {
    cert,
    key,
    serial: x.serialNumber,
    notBefore,
    notAfter: Date.parse(x.validTo),
    obtainedAt: obtainedAt ?? notBefore,
  };
}

export class AgentIdentity {
  private current: HeldCertificate | null = null;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(private readonly opts: AgentIdentityOptions) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
  }

  get certificate(): HeldCertificate | null {
    return this.current;
  }

  /**
   * When the certificate in use should be renewed (ms since the epoch): 60-75 % into its life,
   * counted from when it was obtained (certificates are back-dated for clock skew).
   */
  renewAt(c: HeldCertificate): number {
    const start = Math.max(c.notBefore, c.obtainedAt);
    return start + (c.notAfter - start) * (0.6 + 0.15 * this.random());
  }

  private async readFiles(): Promise<HeldCertificate | null> {
    const { certFile, keyFile, cellId } = this.opts;
    let cert: string;
    let key: string;
    try {
      [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
    } catch {
      return null;
    }
    const problem = unusableBecause(cert, key, cellId, this.now());
    if (problem) {
      this.opts.logger.warn({ problem, certFile }, 'cell certificate on disk not used');
      return null;
    }
    return held(cert, key);
  }

  private async token(): Promise<string | undefined> {
    if (!this.opts.tokenFile) return undefined;
    try {
      const t = (await readFile(this.opts.tokenFile, 'utf8')).trim();
      return t === '' ? undefined : t;
    } catch (err) {
      throw new ValidationError(
        'bootstrapTokenFile',
        this.opts.tokenFile,
        `cannot read: ${errorMessage(err)}`,
      );
    }
  }

  /** One certificate request (a new key each time); installs the answer. */
  async renew(): Promise<HeldCertificate> {
    const { cellId, client, logger, metrics } = this.opts;
    const expired = !this.current || this.current.notAfter <= this.now();
    const token = expired ? await this.token() : undefined;
    if (expired && token === undefined) {
      throw new ValidationError(
        'bootstrapTokenFile',
        this.opts.tokenFile,
        'the cell has no valid certificate and no bootstrap token to ask for one',
      );
    }
    const method = token ? 'token' : 'certificate';
    const key = (
      await generateKeyPairAsync('rsa', {
        modulusLength: 2048,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      })
    ).privateKey as string;
    let signed: Awaited<ReturnType<ControllerClient['requestCertificate']>>;
    try {
      signed = await client.requestCertificate(makeCsr(key, cellId), token);
    } catch (err) {
      metrics?.certificateRenewals.inc({ method, outcome: 'failed' });
      throw err;
    }
    const problem = unusableBecause(signed.certificate, key, cellId, this.now());
    if (problem) {
      metrics?.certificateRenewals.inc({ method, outcome: 'unusable' });
      throw new ValidationError(
        'certificate',
        signed.serial,
        `the controller's answer is unusable: ${problem}`,
      );
    }
    // key first: a crash in between leaves a pair that does not match, which ready() replaces
    await writeFileAtomic(this.opts.keyFile, key, 0o600);
    await writeFileAtomic(this.opts.certFile, signed.certificate, 0o644);
    const next = held(signed.certificate, key, this.now());
    client.useCertificate(next.cert, next.key);
    this.current = next;
    metrics?.certificateRenewals.inc({ method, outcome: 'ok' });
    metrics?.certificateNotAfter.set(Math.floor(next.notAfter / 1000));
    logger.info(
      {
        event: 'certificate_installed',
        method,
        serial: next.serial,
        notAfter: new Date(next.notAfter).toISOString(),
      },
      'cell certificate installed',
    );
    return next;
  }

  /** A usable certificate: from disk, or requested (retried with backoff until `signal` aborts). */
  async ready(signal: AbortSignal): Promise<HeldCertificate> {
    const onDisk = await this.readFiles();
    if (onDisk) {
      this.current = onDisk;
      this.opts.client.useCertificate(onDisk.cert, onDisk.key);
      this.opts.metrics?.certificateNotAfter.set(Math.floor(onDisk.notAfter / 1000));
      return onDisk;
    }
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.renew();
      } catch (err) {
        if (signal.aborted) throw err;
        const delay = this.delay(attempt, err);
        this.opts.logger.warn({ err, retryInMs: delay }, 'no cell certificate yet');
        await sleep(delay, signal);
      }
    }
  }

  private delay(attempt: number, err: unknown): number {
    // a controller that signs nothing will not start to within seconds
    if (err instanceof ControllerRequestError && err.apiCode === 'CFNET_IDENTITY_DISABLED') return 3600_000;
    return backoffDelay(
      attempt,
      {
        initialMs: this.opts.minBackoffMs ?? 500,
        maxMs: this.opts.maxBackoffMs ?? 30_000,
        factor: 2,
        jitter: 0.5,
      },
      this.random,
    );
  }

  /** Renews before expiry, forever (until `signal` aborts). */
  async run(signal: AbortSignal): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      const c = this.current;
      const wait = c ? Math.max(0, this.renewAt(c) - this.now()) : 0;
      try {
        if (attempt === 0) await sleep(wait, signal);
        await this.renew();
        attempt = 0;
      } catch (err) {
        if (signal.aborted) return;
        const delay = this.delay(attempt++, err);
        this.opts.logger.warn({ err, retryInMs: delay }, 'cell certificate renewal failed');
        try {
          await sleep(delay, signal);
        } catch {
          return;
        }
      }
    }
  }
}
