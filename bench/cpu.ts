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
  /** CPU time of the database server's processes on this machine (MariaDB/MySQL, PostgreSQL), µs; undefined without /proc. */
  databaseUs: number | undefined;
}

/** Process names of the database servers the bench may run against. */
const DATABASE_SERVERS = new Set(['mariadbd', 'mysqld', 'postgres']);

/** /proc/<pid>/stat counts in clock ticks: 100 a second on Linux (USER_HZ, fixed for user space). */
const TICK_US = 10_000;

export function cpuSnapshot(): CpuSnapshot {
  let machineUs = 0;
  for (const cpu of os.cpus()) machineUs += (cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq) * 1000;
  return { machineUs, databaseUs: databaseServersUs() };
}

/**
 * The CPU the database server processes have used, summed (a PostgreSQL backend that exited between
 * two snapshots is missing from the second: its share is not counted).
 */
function databaseServersUs(): number | undefined {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  let total = 0;
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
    total += (Number(fields[11]) + Number(fields[12])) * TICK_US;
  }
  return total;
}
