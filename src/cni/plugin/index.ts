/**
 * The CNI plugin itself: one invocation (env + stdin) in, stdout + exit status out. Used unchanged
 * by the warm executor (executor.ts) and by the one-off fallback process (fallback.ts), so both
 * paths give identical results.
 *
 *
 * This file is the dispatch; each operation lives in its own file beside it (add, del, check, gc,
 * status, version), what they are given in deps.ts and what several share in shared.ts.
 */
import type { Logger } from '../../lib/log.js';
import { decodeStdin, parseNetConfig } from '../config.js';
import { checkEnv } from '../env.js';
import { cniErrorJson, toCniError } from '../errors.js';
import type { CniRequest, CniResponse } from '../types.js';
import { checkCommandVersion, formatResult } from '../version.js';
import { cmdAdd } from './add.js';
import { cmdCheck } from './check.js';
import { cmdDel } from './del.js';
import type { CniDeps } from './deps.js';
import { cmdGc } from './gc.js';
import { SILENT } from './shared.js';
import { cmdStatus } from './status.js';
import { cmdVersion, versionOf } from './version.js';

export type { CniDeps, ContainerDataplane, TableView } from './deps.js';

/** Runs one invocation; never throws (errors become CNI error JSON with exit status 1). */
export async function invokeCni(req: CniRequest, deps: CniDeps): Promise<CniResponse> {
  let log: Logger = deps.logger ?? SILENT;
  let cmd = req.env.CNI_COMMAND ?? '';
  try {
    const env = checkEnv(req.env);
    cmd = env.command;
    if (env.command === 'VERSION') return { stdout: cmdVersion(), exitCode: 0 };
    const raw = decodeStdin(req.stdin);
    const cfg = parseNetConfig(raw);
    if (!deps.logger && deps.loggerFor) log = deps.loggerFor(cfg);
    log = log.child({ cmd, handle: env.containerId, ifname: env.ifname });
    checkCommandVersion(env.command, cfg.cniVersion);
    const t0 = performance.now();
    let out = '';
    switch (env.command) {
      case 'ADD':
        out = `${JSON.stringify(formatResult(await cmdAdd(env, cfg, deps, log), cfg.cniVersion))}\n`;
        break;
      case 'DEL':
        await cmdDel(env, cfg, deps, log);
        break;
      case 'CHECK':
        await cmdCheck(env, cfg, deps);
        break;
      case 'GC':
        await cmdGc(cfg, deps, log);
        break;
      case 'STATUS':
        await cmdStatus(cfg);
        break;
    }
    log.debug({ ms: Math.round((performance.now() - t0) * 10) / 10 }, 'cni invocation done');
    return { stdout: out, exitCode: 0 };
  } catch (err) {
    const e = toCniError(err);
    log.warn({ cmd, code: e.cniCode, msg: e.message }, 'cni invocation failed');
    return { stdout: `${JSON.stringify(cniErrorJson(e, versionOf(req.stdin)))}\n`, exitCode: 1 };
  }
}
