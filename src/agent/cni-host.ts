/**
 * The CNI host: the warm CNI executor the agent runs (its dataplane callbacks record CNI-time
 * containers and serialise container changes with rule-set applies) and the local socket the
 * plugin reports to when it runs as a one-off process (its events; `/v1/state`). A dry run hosts
 * no executor (it would attach containers).
 */
import type { CniEvent } from '../cni/agent-client.js';
import type { NetConfig } from '../cni/config.js';
import { nftDataplaneFactory } from '../cni/dataplane.js';
import { type CniExecutor, startCniExecutor } from '../cni/executor.js';
import type { ContainerDataplane } from '../cni/plugin/index.js';
import type { AttachmentRef } from '../dataplane/apply.js';
import type { CellContainer, CellRuleSet, EgressRule } from '../model/types.js';
import type { AgentContext } from './context.js';
import { type LocalContainer, localC2C } from './merge.js';
import { routerIngressFor } from './router-ingress.js';
import { type RunningHttp, startLocalServer } from './servers.js';
import type { AgentStatus } from './status-keeper.js';

export interface CniHostHooks {
  /** The controller's rule set in hand (c2c identity of new containers), or null. */
  base(): CellRuleSet | null;
  /** CNI-time containers (the rules keeper's). */
  readonly local: Map<string, LocalContainer>;
  /** Re-merge and apply (a plugin process outside the agent changed the table). */
  applyNow(): Promise<void>;
  /** The routers' tags let in to app ports (empty unless enableOverlayIngressRules). */
  routerTags(): number[];
  saveSoon(): void;
  requestStatus(): void;
  state(): AgentStatus;
}

export class CniHost {
  private executor: CniExecutor | null = null;
  private localServer: RunningHttp | null = null;

  constructor(
    private readonly ctx: AgentContext,
    private readonly hooks: CniHostHooks,
  ) {}

  /** The hosted executor's socket (null when none is hosted). */
  get executorSocket(): string | null {
    return this.executor?.socket ?? null;
  }

  /** Ready: an executor is hosted, or none is configured (or it is a dry run). */
  get ready(): boolean {
    return this.executor !== null || !this.ctx.config.executorSocket || this.ctx.dryRun;
  }

  async start(): Promise<void> {
    const c = this.ctx.config;
    if (c.agentSocket) {
      this.localServer = await startLocalServer({
        socket: c.agentSocket,
        logger: this.ctx.log,
        onEvent: (e) => this.onCniEvent(e, false),
        state: () => this.hooks.state(),
      });
    }
    if (c.executorSocket && this.ctx.dryRun) {
      this.ctx.log.info('dry run: no CNI executor is hosted (it would attach containers)');
    } else if (c.executorSocket) {
      this.executor = await startCniExecutor({
        socket: c.executorSocket,
        logger: this.ctx.log.child({ component: 'cni' }),
        dataplane: this.executorDataplane(),
        notify: (e) => this.onCniEvent(e, true),
      });
    }
  }

  /** Closes the executor socket (in-flight CNI calls finish) and the local socket. */
  async close(): Promise<void> {
    await this.executor?.close().catch((err) => this.ctx.log.warn({ err }, 'executor close'));
    await this.localServer?.close().catch(() => undefined);
  }

  /**
   * The dataplane the hosted executor uses: the agent's own NftDataplane (so its view of the table
   * stays exact), with each container change serialised with rule-set applies and recorded as a
   * CNI-time container. A config naming another table or lock directory gets its own dataplane.
   */
  private executorDataplane(): (cfg: NetConfig) => ContainerDataplane {
    const { ctx, hooks } = this;
    const other = nftDataplaneFactory(ctx.log.child({ component: 'cni-dataplane' }));
    const own: ContainerDataplane = {
      addContainer: (plain: CellContainer, egressRules: EgressRule[], cellConfig, opts) =>
        ctx.mutex.run(async () => {
          // c2c identity from the rule set in hand (tag table, same-app entries): in place in the
          // admitting transaction, before ADD returns, with no controller round trip
          const { container, c2c: same } = localC2C(hooks.base(), plain);
          // and the routers' way in to its app ports (enableOverlayIngressRules), in the same step
          const c2c = [...same, ...routerIngressFor(container, hooks.routerTags())];
          hooks.local.set(container.handle, { container, egressRules, addedAt: Date.now() });
          if (container.tag !== null) ctx.metrics.cniLocalTags.inc();
          try {
            // the read-back path: the agent's own diff base stays exact
            return await ctx.dataplane.addContainer(container, egressRules, cellConfig, {
              ...(opts?.takeOver ? { takeOver: opts.takeOver } : {}),
              ...(c2c.length > 0 ? { c2c } : {}),
            });
          } catch (err) {
            hooks.local.delete(container.handle);
            throw err;
          }
        }),
      removeAttachment: (ref: AttachmentRef) =>
        ctx.mutex.run(async () => {
          hooks.local.delete(ref.handle);
          return ctx.dataplane.removeAttachment(ref);
        }),
      addressUse: () => ctx.dataplane.addressUse(),
      readBack: () => ctx.dataplane.readBack(),
    };
    let warned = false;
    return (cfg) => {
      if (cfg.nftTable === ctx.config.nftTable && cfg.stateDir === ctx.config.cniStateDir) return own;
      if (!warned) {
        warned = true;
        ctx.log.warn(
          { nftTable: cfg.nftTable, stateDir: cfg.stateDir },
          'CNI config names another nft table or state dir than the agent: its containers are not merged',
        );
      }
      return other(cfg);
    };
  }

  /** A CNI ADD/DEL: remember CNI-time containers, report the inventory. */
  async onCniEvent(e: CniEvent, inProcess: boolean): Promise<void> {
    const { hooks } = this;
    if (e.type === 'add') {
      if (e.container && e.container.handle === e.handle) {
        hooks.local.set(e.handle, {
          container: e.container,
          egressRules: e.egressRules ?? [],
          addedAt: Date.now(),
        });
      }
      // A plugin process outside the agent changed the table: bring the agent's view back in step.
      if (!inProcess && hooks.base()) await hooks.applyNow();
    } else {
      hooks.local.delete(e.handle);
    }
    this.ctx.log.info({ type: e.type, handle: e.handle, ip: e.ip, inProcess }, 'CNI event');
    hooks.saveSoon();
    hooks.requestStatus();
  }
}
