/**
 * Per-cell bootstrap tokens: `hex(HMAC-SHA256(secret, "cfnet-cell-bootstrap:" + cellId))`. The
 * controller holds the secret; each cell is given only its own token (the BOSH agent job computes it
 * on the director while rendering, bosh/jobs/cfnet-agent/templates/bootstrap-token.erb), so a cell's
 * token says nothing about another cell's. A token only ever authorises a certificate request for
 * its own cell, from the address BBS gives that cell (authority.ts).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

const CONTEXT = 'cfnet-cell-bootstrap:';

export function cellBootstrapToken(secret: string, cellId: string): string {
  return createHmac('sha256', secret).update(`${CONTEXT}${cellId}`, 'utf8').digest('hex');
}

/** Constant-time check of a candidate token for `cellId` (hashes first, so lengths do not leak). */
export function bootstrapTokenMatches(secret: string, cellId: string, candidate: unknown): boolean {
  if (typeof candidate !== 'string' || candidate === '') return false;
  const want = createHash('sha256').update(cellBootstrapToken(secret, cellId)).digest();
  const got = createHash('sha256').update(candidate.trim()).digest();
  return timingSafeEqual(want, got);
}
