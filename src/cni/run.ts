/**
 * One invocation in this process, from the real environment and stdin: what `cfnet cni` and the
 * shim's fallback (fallback.ts) run when no executor is reachable.
 */
import { nftDataplaneFactory } from './dataplane.js';
import { pickCniEnv } from './env.js';
import { pluginLogger } from './logger.js';
import { MtuCache } from './mtu.js';
import { invokeCni } from './plugin.js';
import type { CniResponse } from './types.js';

export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

export async function runCniOnce(
  env: Record<string, string | undefined> = process.env,
  stdin?: string,
): Promise<CniResponse> {
  const input = stdin ?? (await readAll(process.stdin));
  return invokeCni(
    { env: pickCniEnv(env), stdin: input },
    { dataplane: nftDataplaneFactory(), mtuCache: new MtuCache(), loggerFor: pluginLogger },
  );
}

/** Runs, prints stdout and exits with the plugin's status. */
export async function runCniMain(): Promise<never> {
  const out = await runCniOnce();
  await new Promise<void>((resolve) => process.stdout.write(out.stdout, () => resolve()));
  process.exit(out.exitCode);
}
