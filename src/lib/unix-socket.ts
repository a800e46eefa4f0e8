/** Unix-socket helpers shared by the agent's local servers and the CNI executor. */
import { connect } from 'node:net';

/** True when something accepts connections on `path` (a stale socket file answers false). */
export function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
