/**
 * Shared test fixtures: small rule sets (containers with defaults, one empty ASG set) for dataplane,
 * agent and rule-set-store tests, and traffic probes. Build test data here rather than in each file.
 */
import { type CellContainer, type CellRuleSet, DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import type { Probe } from './netns.js';

/** A TCP / UDP probe of `host:port` (helpers/netns.ts `probe`, `expectTraffic`). */
export const tcp = (host: string, port: number): Probe => ({ proto: 'tcp', host, port });
export const udp = (host: string, port: number): Probe => ({ proto: 'udp', host, port });

/** An app container without identity, tag or NetIn, using ASG set `h`. */
export function container(handle: string, ip: string, o: Partial<CellContainer> = {}): CellContainer {
  return {
    handle,
    ip,
    appGuid: '',
    spaceGuid: '',
    orgGuid: '',
    workload: 'app',
    tag: null,
    egress: 'h',
    netIn: [],
    ...o,
  };
}

/** A rule set of `containers` with ASG set `h` (no rules), no c2c, the default config. */
export function ruleSetOf(containers: CellContainer[], extra: Partial<CellRuleSet> = {}): CellRuleSet {
  return {
    cellId: 'cell-1',
    version: 1,
    containers,
    asgSets: { h: [] },
    c2c: [],
    config: DEFAULT_CELL_CONFIG,
    ...extra,
  };
}

/**
 * Version-0 rule set of cell `cellId` holding one app container (app `a`, space `s`, org `o`) per
 * handle at 10.255.1.2, .3, …, all using the empty ASG set `egress` (absent when there are none).
 */
export function ruleSetOfHandles(cellId: string, handles: string[], egress = 'e'): CellRuleSet {
  return ruleSetOf(
    handles.map((h, i) =>
      container(h, `10.255.1.${i + 2}`, { appGuid: 'a', spaceGuid: 's', orgGuid: 'o', egress }),
    ),
    { cellId, version: 0, asgSets: handles.length ? { [egress]: [] } : {} },
  );
}
