/**
 * One invocation in this process, from the real environment and stdin: what `cfnet cni` and the
 * shim's fallback (fallback.ts) run when no executor is reachable.
 */
import { nftDataplaneFactory } from './dataplane.js';
import { pickCniEnv } from './env.js';
import { pluginLogger } from './logger.js';
import { MtuCache } from './mtu.js';
import { invokeCni } from './plugin/index.js';
import type { CniResponse } from './types.js';
import { aboutText } from './version.js';

export async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Runs one invocation. As skel does, stdin is not read for VERSION (it depends on nothing else) nor
 * without CNI_COMMAND (a person started the plugin by hand: `about` gets the about text for stderr).
 */
export async function runCniOnce(
  env: Record<string, string | undefined> = process.env,
  stdin?: string,
): Promise<CniResponse & { about?: string }> {
  const command = env.CNI_COMMAND ?? '';
  if (command === '') return { stdout: '', exitCode: 0, about: aboutText() };
  const input = stdin ?? (command === 'VERSION' ? '' : await readAll(process.stdin));
  return invokeCni(
    { env: pickCniEnv(env), stdin: input },
    { dataplane: nftDataplaneFactory(), mtuCache: new MtuCache(), loggerFor: pluginLogger },
  );
}

/** Runs, prints stdout and exits with the plugin's status. */
export async function runCniMain(): Promise<never> {
  const out = await runCniOnce();
  if (out.about) process.stderr.write(out.about);
  await new Promise<void>((resolve) => process.stdout.write(out.stdout, () => resolve()));
  process.exit(out.exitCode);
}
