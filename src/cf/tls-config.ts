/**
 * TLS material for the CF clients: PEM strings, or paths of PEM files (the BOSH-style `ca_cert`,
 * `client_cert`, `client_key` properties). Never logged.
 */
import { loadPem } from '../lib/tls.js';

export interface TlsMaterial {
  /** CA certificate(s) the server must chain to (PEM). */
  ca?: string;
  /** Client certificate (PEM), for mTLS. */
  cert?: string;
  /** Client private key (PEM), for mTLS. */
  key?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** Expected server name (SNI / certificate host), when the URL host differs. */
  servername?: string;
  /** Verify the server certificate. Default true; false only for tests against ad-hoc servers. */
  rejectUnauthorized?: boolean;
}

export interface ResolvedTls {
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  rejectUnauthorized: boolean;
}

/** Read files named in `t` (PEM strings win over files). */
export function resolveTls(t: TlsMaterial | undefined): ResolvedTls {
  const out: ResolvedTls = { rejectUnauthorized: t?.rejectUnauthorized ?? true };
  if (!t) return out;
  const ca = t.ca ?? (t.caFile ? loadPem(t.caFile) : undefined);
  const cert = t.cert ?? (t.certFile ? loadPem(t.certFile) : undefined);
  const key = t.key ?? (t.keyFile ? loadPem(t.keyFile) : undefined);
  if (ca) out.ca = ca;
  if (cert) out.cert = cert;
  if (key) out.key = key;
  if (t.servername) out.servername = t.servername;
  return out;
}
