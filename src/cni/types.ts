/**
 * CNI wire shapes (SPEC §5) in their 1.0.0 form, plus the invocation request/response the plugin
 * core works on (the same for the executor and the fallback process).
 */

export interface CniInterface {
  name: string;
  mac?: string;
  /** 1.1.0 only (dropped when printing older versions). */
  mtu?: number;
  /** Netns path for container interfaces; absent for host interfaces. */
  sandbox?: string;
}

export interface CniIpConfig {
  /** CIDR, e.g. `10.255.3.7/32`. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  [key: string]: unknown;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

/** The CNI_* environment of one invocation (only non-empty values are present). */
export interface CniEnv {
  CNI_COMMAND?: string;
  CNI_CONTAINERID?: string;
  CNI_NETNS?: string;
  CNI_IFNAME?: string;
  CNI_ARGS?: string;
  CNI_PATH?: string;
}

export const CNI_ENV_KEYS = [
  'CNI_COMMAND',
  'CNI_CONTAINERID',
  'CNI_NETNS',
  'CNI_IFNAME',
  'CNI_ARGS',
  'CNI_PATH',
] as const satisfies readonly (keyof CniEnv)[];

/** One invocation: env + the bytes the runtime wrote on stdin. */
export interface CniRequest {
  env: CniEnv;
  stdin: string;
}

/** What the plugin prints on stdout and its exit status. */
export interface CniResponse {
  stdout: string;
  exitCode: number;
}

/** The CNI commands this plugin implements. */
export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';
