/** VERSION, and the cniVersion errors are printed with. */
import { isSupportedVersion, versionInfo, WIRE_VERSION } from '../version.js';

/** VERSION's stdout: the versions this plugin speaks. */
export function cmdVersion(): string {
  return `${JSON.stringify(versionInfo())}\n`;
}

/** cniVersion to print errors with: the config's when readable and supported. */
export function versionOf(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return isSupportedVersion(v) ? v : WIRE_VERSION;
  } catch {
    return WIRE_VERSION;
  }
}
