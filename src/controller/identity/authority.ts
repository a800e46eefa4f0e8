/**
 * The cell identity authority: the only holder of the agent CA's private key. It signs a cell's
 * certificate signing request when
 *  1. the requester is authenticated for that cell: it presents a valid certificate of the same
 *     cell (renewal), or the cell's bootstrap token (first certificate, or after the old one
 *     expired); wrong tokens are throttled per source address;
 *  2. the request comes from the address CF gives the cell (BBS cell presence, directory.ts), so a
 *     token or key copied off a cell is of no use from anywhere else;
 *  3. the CSR's self-signature verifies and its RSA key has at least 2048 bits.
 * The certificate is built from what was verified, never from what the CSR asks: CN = cell id,
 * DNS SAN `<cell>.cell.cfnet`, IP SAN = the verified address (the agent API holds leases to it),
 * client authentication only, valid `ttlMs` (short: agents renew at two thirds of it).
 */
import type { AuthThrottle } from '../../lib/auth-throttle.js';
import type { Logger } from '../../lib/log.js';
import { counter, METRICS, type Registry } from '../../lib/metrics.js';
import { type CertificateAuthority, checkCsr, describeCert, issueCert } from '../../lib/tls.js';
import { validateCellId } from '../../state/keys.js';
import { bootstrapTokenMatches } from './bootstrap-token.js';
import { type CellDirectory, normaliseAddress } from './directory.js';
import { IdentityError } from './errors.js';

/** DNS SAN suffix naming a cell in an agent certificate. */
export const CELL_SAN_SUFFIX = '.cell.cfnet';
/** Smallest RSA key the authority certifies. */
export const MIN_RSA_BITS = 2048;
/** Certificates are back-dated this much (clock skew between controller and cells), at most a tenth of their life. */
const BACKDATE_MS = 5 * 60_000;

/** Lifetime of a cell certificate the controller signs, in minutes (`cellCertTtlMinutes`). */
export const DEFAULT_CELL_CERT_TTL_MINUTES = 1440;

export interface IdentityAuthorityOptions {
  ca: CertificateAuthority;
  directory: CellDirectory;
  /**
   * Lifetime of a cell certificate (ms).
   * @defaultValue {@link DEFAULT_CELL_CERT_TTL_MINUTES} in ms
   */
  ttlMs?: number;
  /** Secret of the per-cell bootstrap tokens; unset = only renewals by a valid certificate. */
  bootstrapSecret?: string;
  throttle: AuthThrottle;
  logger: Logger;
  registry?: Registry;
  now?: () => number;
}

export interface CertificateRequest {
  cellId: string;
  csr: unknown;
  token?: unknown;
  /** Source address of the TCP connection. */
  sourceAddress: string;
  /** Cell named by a valid client certificate on the connection, or null. */
  certifiedCell: string | null;
}

export interface IssuedCellCertificate {
  certificate: string;
  ca: string;
  notAfter: string;
  serial: string;
}

export class CellIdentityAuthority {
  readonly ttlMs: number;
  private readonly now: () => number;
  private readonly issued;

  constructor(private readonly opts: IdentityAuthorityOptions) {
    this.ttlMs = opts.ttlMs ?? DEFAULT_CELL_CERT_TTL_MINUTES * 60_000;
    this.now = opts.now ?? Date.now;
    this.issued = opts.registry
      ? counter(opts.registry, METRICS.cellCertificates, 'Cell certificate requests by method and outcome', [
          'method',
          'outcome',
        ])
      : undefined;
  }

  get directory(): CellDirectory {
    return this.opts.directory;
  }

  private authenticate(req: CertificateRequest, source: string): 'certificate' | 'token' {
    if (req.certifiedCell !== null && req.certifiedCell === req.cellId) return 'certificate';
    if (req.certifiedCell !== null) {
      throw new IdentityError(
        'CFNET_IDENTITY_UNAUTHENTICATED',
        `certificate of cell ${req.certifiedCell} may not request one for cell ${req.cellId}`,
        403,
        { cellId: req.cellId },
      );
    }
    const { bootstrapSecret, throttle } = this.opts;
    if (req.token === undefined || req.token === '' || !bootstrapSecret) {
      throw new IdentityError(
        'CFNET_IDENTITY_UNAUTHENTICATED',
        bootstrapSecret
          ? "a valid certificate of this cell or the cell's bootstrap token is required"
          : 'a valid certificate of this cell is required (the controller has no bootstrap secret)',
        401,
        { cellId: req.cellId },
      );
    }
    if (!throttle.admit(source, 'cell-bootstrap')) {
      throw new IdentityError('CFNET_IDENTITY_THROTTLED', 'too many failed attempts; retry later', 429, {
        retryAfterSeconds: throttle.retryAfterSeconds(source),
      });
    }
    if (!bootstrapTokenMatches(bootstrapSecret, req.cellId, req.token)) {
      throttle.fail(source, 'cell-bootstrap', `wrong bootstrap token for cell ${req.cellId}`);
      this.issued?.inc({ method: 'token', outcome: 'unauthenticated' });
      throw new IdentityError('CFNET_IDENTITY_UNAUTHENTICATED', 'wrong bootstrap token for this cell', 401, {
        cellId: req.cellId,
      });
    }
    return 'token';
  }

  /** Verifies the request (see the module comment) and signs the cell's certificate. */
  async sign(req: CertificateRequest): Promise<IssuedCellCertificate> {
    const cellId = validateCellId(req.cellId, 'cell');
    const source = normaliseAddress(req.sourceAddress);
    const method = this.authenticate(req, source);
    const csr = checkCsr(req.csr);
    if (csr.bits < MIN_RSA_BITS) {
      throw new IdentityError(
        'CFNET_IDENTITY_UNAUTHENTICATED',
        `RSA keys need ${MIN_RSA_BITS} bits or more`,
        400,
      );
    }
    const address = await this.opts.directory.addressOf(cellId);
    const log = this.opts.logger;
    if (address === null) {
      this.issued?.inc({ method, outcome: 'unknown_cell' });
      log.warn(
        { event: 'identity_refused', cellId, client: source, method },
        'certificate refused: BBS knows no such cell',
      );
      throw new IdentityError('CFNET_IDENTITY_UNKNOWN_CELL', `BBS presents no cell ${cellId}`, 403, {
        cellId,
      });
    }
    if (normaliseAddress(address) !== source) {
      this.issued?.inc({ method, outcome: 'address_mismatch' });
      log.warn(
        { event: 'identity_refused', cellId, client: source, expected: address, method },
        'certificate refused: request not from the cell’s own address',
      );
      throw new IdentityError(
        'CFNET_IDENTITY_ADDRESS_MISMATCH',
        `cell ${cellId} lives at ${address}, the request came from ${source}`,
        403,
        { cellId, source, address },
      );
    }
    const now = this.now();
    const issued = issueCert(this.opts.ca, {
      cn: cellId,
      sans: { dns: [`${cellId}${CELL_SAN_SUFFIX}`], ip: [address] },
      usage: 'client',
      publicKey: csr.publicKey,
      validity: {
        notBefore: new Date(now - Math.min(BACKDATE_MS, this.ttlMs / 10)),
        notAfter: new Date(now + this.ttlMs),
      },
    });
    const summary = describeCert(issued.cert);
    this.issued?.inc({ method, outcome: 'issued' });
    log.info(
      {
        event: 'identity_issued',
        cellId,
        address,
        method,
        serial: summary.serial,
        notAfter: summary.notAfter,
      },
      'cell certificate issued',
    );
    return {
      certificate: issued.cert,
      ca: this.opts.ca.cert,
      notAfter: summary.notAfter.toISOString(),
      serial: summary.serial,
    };
  }
}

/** The IP SAN of a certificate the authority issued (the cell's verified address), or null. */
export function certifiedAddress(subjectaltname: string | undefined): string | null {
  for (const part of (subjectaltname ?? '').split(/,\s*/)) {
    if (part.startsWith('IP Address:')) return normaliseAddress(part.slice(11));
  }
  return null;
}
