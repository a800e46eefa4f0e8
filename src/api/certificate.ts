/**
 * `POST /v1/cells/{cell}/certificate` `{csr, token?}` → 200 `{certificate, ca, notAfter, serial}`
 * (PEM, PEM, ISO 8601, hex) with `cache-control: no-store`: the cell's next certificate. The one
 * route a client without a valid certificate may call: it then needs the cell's bootstrap token.
 * 404 `CFNET_IDENTITY_DISABLED` when the controller signs no certificates; 401
 * `CFNET_IDENTITY_UNAUTHENTICATED` (wrong token), 429 `CFNET_IDENTITY_THROTTLED` (with
 * `retry-after`), 403 `CFNET_IDENTITY_UNKNOWN_CELL` / `CFNET_IDENTITY_ADDRESS_MISMATCH`.
 */
import { z } from 'zod';

export const CertificateBody = z.object({
  csr: z.string().max(16_384),
  token: z.string().max(256).optional(),
});
export type CertificateBody = z.infer<typeof CertificateBody>;

export const CertificateAnswer = z.object({
  certificate: z.string().min(1),
  ca: z.string().min(1),
  notAfter: z.string(),
  serial: z.string(),
});
export type SignedCertificate = z.infer<typeof CertificateAnswer>;
