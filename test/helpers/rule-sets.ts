/** Small rule sets for dataplane and agent tests: containers with defaults, one empty ASG set `h`. */
import { type CellContainer, type CellRuleSet, DEFAULT_CELL_CONFIG } from '../../src/model/types.js';

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
