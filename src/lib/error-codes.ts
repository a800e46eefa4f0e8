/**
 * Every stable error code cfnet raises or answers with, and what it means. Codes are for tests,
 * metrics, logs (`err.code`) and operators; they never change meaning. `http` is the status the
 * agent API or the dashboard answers with where the error crosses HTTP; `exit` the operator tools'
 * exit status (src/lib/exit-codes.ts) where it is not the general 1. `CfnetError` takes only codes
 * listed here, so a new code is added here first (test/unit/lib-error-codes.test.ts checks both ways).
 */
import { EXIT } from './exit-codes.js';

export interface ErrorCodeInfo {
  meaning: string;
  http?: number;
  exit?: number;
}

export const ERROR_CODES = {
  // ---- general
  CFNET_INVALID: {
    meaning: 'invalid input; the field and value are named, nothing was applied',
    http: 400,
    exit: EXIT.invalid,
  },
  CFNET_SETTINGS: { meaning: 'settings cannot be assembled (file, environment, flags)', exit: EXIT.invalid },
  CFNET_BAD_REQUEST: { meaning: 'an HTTP request the server could not parse', http: 400 },
  CFNET_INTERNAL: { meaning: 'an unexpected failure behind an HTTP endpoint', http: 500 },
  CFNET_NOT_FOUND: { meaning: 'no such object or route', http: 404, exit: EXIT.notFound },
  CFNET_UNAUTHENTICATED: {
    meaning: 'no or wrong credentials (operator token, client certificate)',
    http: 401,
  },
  CFNET_FORBIDDEN: { meaning: 'the caller may not do this', http: 403 },
  CFNET_CROSS_ORIGIN: { meaning: 'a state-changing dashboard request from another origin', http: 403 },
  CFNET_THROTTLED: { meaning: 'too many failed authentications from this client', http: 429 },
  CFNET_HOST_COMMAND: {
    meaning: 'a host command (ip, nft, iptables, …) failed to start, exited non-zero or timed out',
  },
  // ---- the Redis contract (src/state, src/rules)
  CFNET_FENCED_OFF: { meaning: 'a write refused: this replica no longer holds the leadership lease' },
  CFNET_WORLD_NOT_READY: { meaning: 'the leader has not finished writing the world into Redis' },
  CFNET_STALE_WRITE: { meaning: "a rule-set write refused: the stored version is not the writer's base" },
  CFNET_MISSING_TAG_TABLE: { meaning: 'a rule set names a tag table that is not stored' },
  CFNET_MISSING_ASG_SET: { meaning: 'a rule set names an ASG set that is not stored' },
  CFNET_MISSING_SNAPSHOT: { meaning: 'a container references an egress snapshot that is not stored' },
  CFNET_PATCH_VERSION_MISMATCH: { meaning: 'a rule-set patch does not start at the base version' },
  CFNET_PATCH_CELL_MISMATCH: { meaning: 'a rule-set patch is for another cell' },
  CFNET_PATCH_DANGLING_ASG_SET: {
    meaning: 'a rule-set patch leaves a container referencing an absent ASG set',
  },
  CFNET_CORRUPT_RECORD: { meaning: 'a world record in Redis cannot be read' },
  // ---- subnet leases
  CFNET_LEASE_EXHAUSTED: { meaning: 'no subnet could be claimed (none free, or contention)', http: 503 },
  CFNET_LEASE_MISMATCH: { meaning: 'the cell holds another subnet than the one named', http: 409 },
  CFNET_LEASE_UNKNOWN: { meaning: 'the cell holds no lease', http: 404 },
  CFNET_LEASE_CONFLICT: { meaning: "the subnet is another live cell's", http: 409 },
  CFNET_LEASE_RECOVERING: { meaning: 'the lease table is being rebuilt; new subnets come later', http: 503 },
  CFNET_LEASE_FOREIGN_UNDERLAY: {
    meaning: "a lease asked for an underlay address not the cell's own",
    http: 403,
  },
  CFNET_ROUTER_TAG_UNAVAILABLE: {
    meaning: "a router's lease waits for its tag, which the policy server did not give (yet)",
    http: 503,
  },
  // ---- cell identity
  CFNET_IDENTITY_UNAUTHENTICATED: {
    meaning: 'neither a valid certificate of the cell nor its bootstrap token',
    http: 401,
  },
  CFNET_IDENTITY_THROTTLED: { meaning: 'too many failed identity attempts from this client', http: 429 },
  CFNET_IDENTITY_UNKNOWN_CELL: { meaning: 'BBS presents no such cell (or no address for it)', http: 403 },
  CFNET_IDENTITY_ADDRESS_MISMATCH: {
    meaning: 'the request comes from another address than BBS gives the cell',
    http: 403,
  },
  CFNET_IDENTITY_DISABLED: {
    meaning: 'the controller signs no certificates (no CA key configured)',
    http: 404,
  },
  // ---- CF components
  CFNET_CF_HTTP_STATUS: { meaning: 'a CF component answered an unexpected HTTP status' },
  CFNET_CF_TIMEOUT: { meaning: 'a CF component did not answer in time' },
  CFNET_CF_CONNECTION: { meaning: 'a CF component could not be reached' },
  CFNET_CF_RATE_LIMITED: { meaning: 'a CF component rate-limits us (retry after the named time)' },
  CFNET_CF_MALFORMED_RESPONSE: {
    meaning: 'a CF component answered something that is not its documented form',
  },
  CFNET_CF_AUTH: { meaning: 'authentication with UAA or a CF component failed' },
  CFNET_CF_INVALID_SECURITY_GROUP: { meaning: 'a security group from CAPI is invalid' },
  CFNET_CF_INVALID_POLICY: { meaning: 'a network policy from the policy server is invalid' },
  CFNET_CAPI_UNSTABLE_LIST: { meaning: 'the CAPI security group list kept changing while paging' },
  CFNET_BBS_UNAVAILABLE: { meaning: 'BBS answered 503 (migrations not finished)' },
  CFNET_BBS_INVALID_RESPONSE: { meaning: 'BBS answered something that is not a valid response' },
  CFNET_BBS_ERROR: { meaning: 'BBS answered with one of its typed errors' },
  CFNET_BBS_BAD_BASE64: { meaning: 'a BBS event payload is not valid base64' },
  CFNET_BBS_EMPTY_PAYLOAD: { meaning: 'a BBS event payload is empty' },
  CFNET_BBS_BAD_PROTOBUF: { meaning: 'a BBS payload does not decode as its protobuf message' },
  CFNET_STREAM_CLOSED: { meaning: 'the BBS event stream is closed' },
  CFNET_CHUNKED_ENCODING: { meaning: 'an HTTP body with invalid chunked encoding' },
  CFNET_HTTP_HEAD: { meaning: 'an invalid HTTP response head' },
  // ---- the cell: agent and dataplane
  CFNET_AGENT_CONTROLLER: {
    meaning: 'the controller refused or failed an agent request (its code is apiCode)',
  },
  CFNET_AGENT_DRY_RUN: { meaning: 'the agent dry run found a problem' },
  CFNET_AGENT_IPTABLES_MISSING: { meaning: 'filterMode is iptables but no iptables binary can be run' },
  CFNET_AGENT_LEASE_MOVE_REFUSED: {
    meaning: 'the controller offered another subnet while containers use the held one',
  },
  CFNET_NFT_APPLY: { meaning: 'nft rejected a transaction (nothing of it was applied)' },
  CFNET_NFT_PARSE: { meaning: "nft's JSON output cannot be read" },
  CFNET_DATAPLANE_ADDRESS_TAKEN: {
    meaning: 'the address belongs to another container in the nft table; nothing changed',
  },
  CFNET_DATAPLANE_NO_STATE: { meaning: "the dataplane's table holds no state cfnet can read" },
  // ---- CNI (CFNET_CNI_<n>: the CNI wire code n, see src/cni/errors.ts; non-zero exit)
  CFNET_CNI_1: { meaning: 'CNI: incompatible CNI version' },
  CFNET_CNI_2: { meaning: 'CNI: unsupported field in the network configuration' },
  CFNET_CNI_3: { meaning: 'CNI: container unknown or does not exist' },
  CFNET_CNI_4: { meaning: 'CNI: invalid necessary environment variables' },
  CFNET_CNI_5: { meaning: 'CNI: I/O failure' },
  CFNET_CNI_6: { meaning: 'CNI: failed to decode content' },
  CFNET_CNI_7: { meaning: 'CNI: invalid network configuration' },
  CFNET_CNI_8: { meaning: 'CNI: invalid network namespace' },
  CFNET_CNI_11: { meaning: 'CNI: try again later' },
  CFNET_CNI_50: { meaning: 'CNI: the plugin is not available' },
  CFNET_CNI_51: {
    meaning: 'CNI: the plugin is not available; existing containers may have limited connectivity',
  },
  CFNET_CNI_999: { meaning: 'CNI: internal failure of the plugin' },
  // ---- operator tools, lab and demo
  CFNET_REDIS_UNREACHABLE: { meaning: 'Redis cannot be reached', exit: EXIT.redisUnreachable },
  CFNET_CONTROLLER_UNAVAILABLE: {
    meaning: 'no leader wrote the world, no worker, or the operator port is down',
    exit: EXIT.noController,
  },
  CFNET_REPLAY_TIMEOUT: { meaning: 'cells were not reconciled within the replay timeout' },
  CFNET_REPLAY_FAILED: { meaning: 'reconciles failed during a replay' },
  CFNET_LAB_REDIS: { meaning: 'the lab could not start or reach its Redis' },
  CFNET_DEMO_ENVIRONMENT: { meaning: 'the demo cannot run in this environment' },
} as const satisfies Record<string, ErrorCodeInfo>;

/** A stable error code (a key of ERROR_CODES). */
export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}
