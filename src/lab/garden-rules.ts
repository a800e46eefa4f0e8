/**
 * Egress rules as Garden hands them to the CNI plugin at container creation
 * (`runtimeConfig.netOutRules`, Garden's NetOutRule JSON): protocol 0 all, 1 tcp, 2 udp, 3 icmp,
 * 4 icmpv6; `networks` as address ranges; `ports` as ranges (tcp/udp); `icmps` with 255 = any.
 * The lab uses it to create a container the way Garden does from its desired LRP or task: the
 * rules CC compiled at desire time, which is what a cell enforces with static ASGs.
 */
import { parseBbsRules } from '../model/asg-rule.js';
import type { EgressRule } from '../model/types.js';

export interface GardenNetOutRule {
  protocol: number;
  networks?: Array<{ start: string; end: string }>;
  ports?: Array<{ start: number; end: number }>;
  icmps?: { type: number; code: number };
  log?: boolean;
}

const PROTOCOL_NUMBERS: Record<EgressRule['protocol'], number> = {
  all: 0,
  tcp: 1,
  udp: 2,
  icmp: 3,
  icmpv6: 4,
};

/** Garden's form of normalised rules. */
export function gardenNetOutRules(rules: readonly EgressRule[]): GardenNetOutRule[] {
  return rules.map((r) => {
    const out: GardenNetOutRule = {
      protocol: PROTOCOL_NUMBERS[r.protocol],
      networks: r.destinations.map((d) => ({ start: d.start, end: d.end })),
    };
    if (r.protocol === 'tcp' || r.protocol === 'udp') {
      out.ports = r.ports.map((p) => ({ start: p.start, end: p.end }));
    }
    if (r.icmp) {
      out.icmps = { type: r.icmp.type < 0 ? 255 : r.icmp.type, code: r.icmp.code < 0 ? 255 : r.icmp.code };
    }
    if (r.log) out.log = true;
    return out;
  });
}

/** Garden's form of a BBS `egress_rules` list (a desired LRP's or a task definition's). */
export function gardenNetOutRulesOfBbs(egressRules: readonly unknown[]): GardenNetOutRule[] {
  return gardenNetOutRules(parseBbsRules([...egressRules], { onInvalid: () => {} }));
}
