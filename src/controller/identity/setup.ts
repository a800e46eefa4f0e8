/** Builds the identity authority of a controller from its config (CA, lifetime, secret, BBS). */
import { BbsClient } from '../../cf/bbs-client.js';
import type { TlsMaterial } from '../../cf/tls-config.js';
import { AuthThrottle } from '../../lib/auth-throttle.js';
import { ValidationError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../../lib/metrics.js';
import type { CertificateAuthority } from '../../lib/tls.js';
import { CellIdentityAuthority } from './authority.js';
import { BbsCellDirectory, type CellDirectory } from './directory.js';

export interface IdentityConfig {
  /** The agent CA: certificate and private key (PEM). */
  ca: CertificateAuthority;
  /** Cell certificate lifetime (ms; setting cellCertTtlMinutes). */
  ttlMs: number;
  /** Secret of the per-cell bootstrap tokens (bootstrap-token.ts). */
  bootstrapSecret?: string;
  /** Where cells live; default: BBS cell presences (the controller's `bbs` settings). */
  directory?: CellDirectory;
}

export function startIdentity(
  cfg: IdentityConfig,
  deps: { bbs?: { url: string; tls?: TlsMaterial }; logger: Logger; registry: Registry },
): { authority: CellIdentityAuthority; close(): void } {
  let directory = cfg.directory;
  let close = () => {};
  if (!directory) {
    if (!deps.bbs) {
      throw new ValidationError('bbsUrl', undefined, 'signing cell certificates needs BBS (cell presences)');
    }
    const client = new BbsClient({
      url: deps.bbs.url,
      ...(deps.bbs.tls ? { tls: deps.bbs.tls } : {}),
      logger: deps.logger,
    });
    directory = new BbsCellDirectory({ list: () => client.cells() });
    close = () => client.close();
  }
  const throttle = new AuthThrottle({ logger: deps.logger, registry: deps.registry });
  const authority = new CellIdentityAuthority({
    ca: cfg.ca,
    directory,
    ttlMs: cfg.ttlMs,
    ...(cfg.bootstrapSecret ? { bootstrapSecret: cfg.bootstrapSecret } : {}),
    throttle,
    logger: deps.logger,
    registry: deps.registry,
  });
  return { authority, close };
}
