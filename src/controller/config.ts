/**
 * The configuration a Controller is built from. Every tunable is required here: settings.ts
 * compiles it once (defaults → validation → use), from flags, environment and file
 * (`toControllerConfig`) or from code (`controllerConfig`, tests, the lab, benchmarks), with the
 * defaults of one table (CONTROLLER_SETTINGS), so nothing downstream re-applies a default. A module
 * of its own so that extensions and the leader life cycle can name it without importing the
 * controller.
 */
import type { TlsMaterial } from '../cf/tls-config.js';
import type { Logger } from '../lib/log.js';
import type { Registry } from '../lib/metrics.js';
import type { RedisAuth } from '../lib/redis.js';
import type { CellConfig } from '../model/types.js';
import type { ComputeOptions } from '../rules/compute.js';
import type { ControllerExtension } from './extensions.js';
import type { IdentityConfig } from './identity/setup.js';
import type { ReconcileResult } from './reconcile/reconciler.js';

export interface ControllerConfig {
  redisUrl: string;
  /** ACL user, password, TLS trust of Redis beside the URL (lib/redis.ts). */
  redisAuth?: RedisAuth;
  /** Redis namespace with a hash tag; also the BullMQ prefix. */
  namespace: string;
  instanceId?: string;
  /** Leadership lease (ms). */
  leaseMs: number;
  workers: {
    concurrency: number;
    /** Child processes running the reconciles (0 = this process); see reconcile/worker-pool.ts. */
    processes: number;
    attempts: number;
    backoffMs: number;
    keepCompleted: number;
    keepFailed: number;
    /**
     * Reconcile job lock (ms): a replica that dies or freezes holding a job gives it back to the
     * queue after about 1.5 × this. Compiled as `jobLockDurationMs(leaseMs)`, like the leadership lease.
     */
    lockDurationMs: number;
  };
  /** Diego BBS; unset = no BBS informer. */
  bbs?: { url: string; tls?: TlsMaterial; relistIntervalMs: number; streamIdleTimeoutMs: number };
  /** Cloud Controller (dynamic ASGs); unset = no ASG informer. */
  capi?: {
    url: string;
    tls?: TlsMaterial;
    uaa: { url: string; clientId: string; clientSecret: string; tls?: TlsMaterial };
    internal?: { url: string; tls?: TlsMaterial };
    checkIntervalMs: number;
    /** Full security-group listing interval (compiled with `asgFullListDefaultMs`). */
    fullListIntervalMs: number;
  };
  /** Policy server; unset = no policy informer. */
  policy?: { url: string; tls?: TlsMaterial; intervalMs: number; fullListIntervalMs: number };
  /** Agent API; unset = not served. */
  api?: {
    host: string;
    port: number;
    tls: { ca: string; cert: string; key: string };
    maxWaitSeconds: number;
  };
  /** Cell certificates signed by this controller (identity/); unset = agents bring their own. */
  identity?: IdentityConfig;
  /** Operator port (unset = not served); `token` (operator token) enables the dashboard (ops/dashboard). */
  operator?: { host: string; port: number; token?: string };
  cellConfig: CellConfig;
  leases: {
    overlayNetwork: string;
    subnetPrefixLength: number;
    ttlMs: number;
    recoveryWindowMs: number;
  };
  rulesetLogLength: number;
  /**
   * How long a new leader waits for a fresh listing of CAPI and the policy server when Redis holds
   * their last-known copy. Without such a copy it waits for the listing, however long.
   */
  initialSyncTimeoutMs: number;
  /**
   * Called on an error this replica cannot recover from (e.g. a leader that cannot build its
   * clients); the CLI stops (releasing leadership) and exits. Default: logged only.
   */
  onFatal?: (err: unknown) => void;
  /** Take part in leader election (run informers). */
  campaign: boolean;
  compute?: ComputeOptions;
  logger?: Logger;
  registry?: Registry;
  /** Operator extensions (journal, dashboard); default: those registered in extension-registry.ts. */
  extensions?: ControllerExtension[];
  /** Observe every reconcile (tests, benchmarks). */
  onReconcile?: (cellId: string, result: ReconcileResult | { outcome: 'not-ready' }) => void;
}
