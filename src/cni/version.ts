/**
 * CNI versions: which config versions are accepted, what VERSION prints, and how a 1.0.0-shaped
 * result is printed for an older config version (0.3.x/0.4.0 IP entries carry `version`).
 */
import { CNI_ERR, CniError } from './errors.js';
import type { CniInterface, CniIpConfig, CniResult, CniRoute } from './types.js';

export const SUPPORTED_VERSIONS = ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type SupportedVersion = (typeof SUPPORTED_VERSIONS)[number];
/** The version spoken when the config names none we could read (errors before decoding, VERSION). */
export const WIRE_VERSION = '1.0.0';

/** Numeric comparison of dotted versions ("0.4.0" < "1.0.0"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

export function isSupportedVersion(v: unknown): v is SupportedVersion {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Throws code 1 unless `v` is a supported version. */
export function checkVersion(v: unknown): SupportedVersion {
  if (typeof v !== 'string' || v === '') {
    throw new CniError(CNI_ERR.INVALID_CONFIG, 'invalid cniVersion: missing (must be a string)', '', {
      field: 'cniVersion',
      value: v,
    });
  }
  if (!isSupportedVersion(v)) {
    throw new CniError(
      CNI_ERR.INCOMPATIBLE_VERSION,
      `incompatible CNI versions; config is "${v}", plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`,
      '',
      { field: 'cniVersion', value: v },
    );
  }
  return v;
}

/** Throws code 1 when `command` needs a newer config version (CHECK ≥ 0.4.0, GC/STATUS ≥ 1.1.0). */
export function checkCommandVersion(command: string, v: SupportedVersion): void {
  const min = command === 'CHECK' ? '0.4.0' : command === 'GC' || command === 'STATUS' ? '1.1.0' : null;
  if (min && compareVersions(v, min) < 0) {
    throw new CniError(
      CNI_ERR.INCOMPATIBLE_VERSION,
      `config version "${v}" does not allow ${command} (needs ${min} or later)`,
      '',
      { command, cniVersion: v },
    );
  }
}

/** VERSION output. */
export function versionInfo(): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: WIRE_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/**
 * What a reference plugin prints on stderr when started without CNI_COMMAND (skel's "about"): a
 * person ran it by hand. bin/cfnet-cni prints the same text itself (a test keeps the two equal).
 */
export function aboutText(): string {
  return `CNI cfnet-cni plugin (cfnet; docs/cni.md)\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`;
}

function ipVersion(address: string): '4' | '6' {
  return address.includes(':') ? '6' : '4';
}

/** The result as printed for `version` (a copy): IP `version` before 1.0.0, interface mtu only in 1.1.0. */
export function formatResult(result: CniResult, version: string): Record<string, unknown> {
  const pre1 = compareVersions(version, '1.0.0') < 0;
  const has11 = compareVersions(version, '1.1.0') >= 0;
  const out: Record<string, unknown> = { cniVersion: version };
  if (result.interfaces) {
    out.interfaces = result.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac) o.mac = i.mac;
      if (has11 && i.mtu !== undefined) o.mtu = i.mtu;
      if (i.sandbox !== undefined) o.sandbox = i.sandbox;
      return o;
    });
  }
  if (result.ips) {
    out.ips = result.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      if (pre1) o.version = ipVersion(ip.address);
      o.address = ip.address;
      if (ip.gateway) o.gateway = ip.gateway;
      if (ip.interface !== undefined) o.interface = ip.interface;
      return o;
    });
  }
  if (result.routes) out.routes = result.routes.map((r) => ({ ...r }));
  if (result.dns) out.dns = { ...result.dns };
  return out;
}

/** Reads a prevResult of any supported version into the 1.0.0 shape (drops IP `version`). */
export function parsePrevResult(raw: unknown): CniResult {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CniError(CNI_ERR.DECODE, 'prevResult must be an object', '', { field: 'prevResult' });
  }
  const r = raw as Record<string, unknown>;
  const bad = (field: string, why: string) =>
    new CniError(CNI_ERR.DECODE, `invalid prevResult.${field}: ${why}`, '', { field: `prevResult.${field}` });
  const out: CniResult = { cniVersion: typeof r.cniVersion === 'string' ? r.cniVersion : WIRE_VERSION };
  if (r.interfaces !== undefined) {
    if (!Array.isArray(r.interfaces)) throw bad('interfaces', 'must be a list');
    out.interfaces = r.interfaces.map((i, n) => {
      if (typeof i !== 'object' || i === null || typeof (i as { name?: unknown }).name !== 'string') {
        throw bad(`interfaces[${n}]`, 'must be an object with a name');
      }
      return { ...(i as object) } as CniInterface;
    });
  }
  if (r.ips !== undefined) {
    if (!Array.isArray(r.ips)) throw bad('ips', 'must be a list');
    out.ips = r.ips.map((ip, n) => {
      if (
        typeof ip !== 'object' ||
        ip === null ||
        typeof (ip as { address?: unknown }).address !== 'string'
      ) {
        throw bad(`ips[${n}]`, 'must be an object with an address');
      }
      const { version: _v, ...rest } = ip as Record<string, unknown>;
      return rest as unknown as CniIpConfig;
    });
  }
  if (r.routes !== undefined) {
    if (!Array.isArray(r.routes)) throw bad('routes', 'must be a list');
    out.routes = r.routes.map((x) => ({ ...(x as object) }) as CniRoute);
  }
  if (r.dns !== undefined) {
    if (typeof r.dns !== 'object' || r.dns === null) throw bad('dns', 'must be an object');
    out.dns = { ...(r.dns as object) };
  }
  return out;
}
