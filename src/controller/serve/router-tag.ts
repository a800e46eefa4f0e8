/**
 * The routers' tag (Silk's overlay ingress): one policy-server group, `INGRESS_ROUTER` of type
 * `router`, whose tag every router marks its overlay packets with (the VXLAN GBP id) and cells
 * accept to containers' app ports. Asked for once, when the first router acquires its lease (so a
 * foundation without routers never creates the group), and kept: the policy server never changes
 * a group's tag.
 */
import { CfnetError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';

/** Silk's group id and type for the routers' tag. */
export const ROUTER_TAG_ID = 'INGRESS_ROUTER';
export const ROUTER_TAG_TYPE = 'router';

export interface TagClient {
  createOrGetTag(id: string, type: string): Promise<number>;
}

export class RouterTag {
  private tag: number | null = null;
  private pending: Promise<number> | null = null;

  /** `client` null: no policy server configured, routers get no lease. */
  constructor(
    private readonly client: TagClient | null,
    private readonly log: Logger,
  ) {}

  /** The tag; throws `CFNET_ROUTER_TAG_UNAVAILABLE` (503) when the policy server does not give it. */
  async get(): Promise<number> {
    if (this.tag !== null) return this.tag;
    if (!this.client) {
      throw new CfnetError(
        'CFNET_ROUTER_TAG_UNAVAILABLE',
        'no policy server is configured: routers get no tag',
      );
    }
    this.pending ??= this.client.createOrGetTag(ROUTER_TAG_ID, ROUTER_TAG_TYPE).finally(() => {
      this.pending = null;
    });
    try {
      this.tag = await this.pending;
      this.log.info({ tag: this.tag, id: ROUTER_TAG_ID }, 'router tag from the policy server');
      return this.tag;
    } catch (err) {
      throw new CfnetError(
        'CFNET_ROUTER_TAG_UNAVAILABLE',
        'the policy server did not give the router tag',
        { id: ROUTER_TAG_ID },
        { cause: err },
      );
    }
  }
}
