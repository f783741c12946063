/**
 * `BENCH_PIN=1`: the server under test (the relay or the bare proxy) runs alone on the first CPU, and
 * everything else the bench starts (the sandbox, the load generator in the bench's own process) on
 * the others, as on a host whose database and clients are elsewhere. Database servers already running
 * are not moved; pin them to the other CPUs by hand for the same picture (docs/performance.md).
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';

export const pinned = process.env.BENCH_PIN === '1';

/** `server`: the process under test; `others`: the sandbox and the bench's own process. */
export type PinRole = 'server' | 'others';

/** The CPUs of a role, as taskset lists them: `0` for the server, `1-(n-1)` for the others. */
export function cpusFor(role: PinRole, cpus = os.cpus().length): string {
  if (role === 'server') return '0';
  return cpus === 2 ? '1' : `1-${cpus - 1}`;
}

/** Pins this process, every thread of it (and the threads and processes it starts later), to the role's CPUs. */
export function pinSelf(role: PinRole): void {
  if (os.cpus().length < 2) throw new Error('BENCH_PIN needs at least two CPUs: one for the server under test, one for the rest');
  try {
    execFileSync('taskset', ['-a', '-cp', cpusFor(role), String(process.pid)], { stdio: 'ignore' });
  } catch (error) {
    throw new Error(`BENCH_PIN: taskset could not pin the process (${(error as Error).message}); install util-linux, or run without BENCH_PIN`);
  }
}
