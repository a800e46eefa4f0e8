/**
 * The wire contract between the cell agent and the controller's agent API: routes, headers, and
 * the zod schemas of every request and answer, shared by the server (src/controller/serve) and
 * the client (src/agent/client.ts). Imports only model (types) and lib (error codes).
 */
export { CertificateAnswer, CertificateBody, type SignedCertificate } from './certificate.js';
export { BAD_ANSWER, ErrorAnswer, type ErrorAnswerBody } from './errors.js';
export {
  AcquireBody,
  LeaseAnswer,
  type LeaseListing,
  LeaseListingAnswer,
  type OverlayLease,
  ReleaseAnswer,
  ReleasedLease,
  RenewBody,
} from './lease.js';
export { cellPath, HEADERS, ROUTES, type RouteName } from './routes.js';
export {
  isPatchShape,
  isRuleSetShape,
  PatchShape,
  RuleSetShape,
  RulesChangeAnswer,
  RulesQuery,
  rulesQueryString,
  versionOfHeader,
} from './rules.js';
export { type InventoryItem, StatusAnswer, StatusBody, type StatusReport } from './status.js';
