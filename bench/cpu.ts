import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

/**
 * CPU time outside the server under test, so that a run's figure can be read against the machine
 * it ran on: when every core is busy, what limits requests per second is the CPU all processes spend
 * on a request (the load generator, the sandbox, the server, the database server), not the server's
 * share alone.
 */
export interface CpuSnapshot {
  /** Busy time of all cores (user, nice, system, irq), µs. */
  machineUs: number;
  /** CPU time of each database server process on this machine (MariaDB/MySQL, PostgreSQL) by pid, µs; undefined without /proc. */
  database: ReadonlyMap<string, number> | undefined;
}

/**
 * The database servers' CPU between two snapshots: each process's growth, a process started since
 * counted from 0. A process that exited in between (a PostgreSQL backend, an autovacuum worker) is
 * missing from the second snapshot, and its share is not counted rather than taken off the others'.
 */
export function databaseUsBetween(before: CpuSnapshot, after: CpuSnapshot): number | undefined {
  if (before.database === undefined || after.database === undefined) return undefined;
  let total = 0;
  for (const [pid, us] of after.database) total += Math.max(0, us - (before.database.get(pid) ?? 0));
  return total;
}

/** Process names of the database servers the bench may run against. */
const DATABASE_SERVERS = new Set(['mariadbd', 'mysqld', 'postgres']);

/** /proc/<pid>/stat counts in clock ticks: 100 a second on Linux (USER_HZ, fixed for user space). */
const TICK_US = 10_000;

export function cpuSnapshot(): CpuSnapshot {
  let machineUs = 0;
  for (const cpu of os.cpus()) machineUs += (cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq) * 1000;
  return { machineUs, database: databaseServersUs() };
}

/** The CPU each database server process has used, by pid. */
function databaseServersUs(): Map<string, number> | undefined {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  const used = new Map<string, number>();
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    // "pid (comm) state ..." where comm may hold spaces and parentheses.
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    if (!DATABASE_SERVERS.has(name)) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    used.set(pid, (Number(fields[11]) + Number(fields[12])) * TICK_US);
  }
  return used;
}
