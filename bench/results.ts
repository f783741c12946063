/**
 * What `npm run bench` writes to bench/results.json (bench/run.ts), for the bench and for the tests
 * that read the file. docs/performance.md explains the figures.
 */

export interface Figures {
  /** Requests per second (autocannon's average over the run). */
  rps: number;
  p50: number;
  p99: number;
  mean: number;
  /** 2xx answers. */
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** CPU time (user + system) the server process spent per answered request: what load on the machine does not change much. */
  cpuUsPerRequest?: number;
  /**
   * Busy time of the whole machine per answered request (every process: the load generator, the
   * sandbox, the server, the database server, and whatever else ran). With every core busy, the
   * ratio of two servers' requests per second is about the inverse ratio of this figure.
   */
  machineCpuUsPerRequest?: number;
  /** CPU time of the MariaDB/MySQL or PostgreSQL server processes on this machine per answered request (0 for SQLite). */
  databaseCpuUsPerRequest?: number;
}

export interface Pair {
  relay: Figures;
  bare: Figures;
  /** relay rps / bare rps */
  ratio: number;
  addedP50Ms: number;
  addedP99Ms: number;
}

export interface LargeFigures {
  latency: Figures;
  /** Peak RSS during the first LARGE_IN_FLIGHT concurrent 10 MB submits over the RSS right before (after a GC). */
  peakGrowthBytes: number;
  /** peakGrowthBytes / (LARGE_IN_FLIGHT x body size). */
  perRequestFactor: number;
}

export interface JunkFigures {
  /** Peak RSS during the burst over the RSS right before it (after a GC). */
  peakGrowthBytes: number;
  /** peakGrowthBytes / (LARGE_IN_FLIGHT x body size), as for the valid body. */
  perRequestFactor: number;
  /** Answers of the burst that were not 2xx (all of them: each body is refused). */
  refused: number;
  /** A small submit right after the burst answered 200. */
  answeringAfter: boolean;
}

export interface TwoProcessFigures {
  database: string;
  /** Submits offered to each relay process, 8 connections each. */
  offeredEach: number;
  startBalance: number;
  relays: Figures[];
  /** All answers of both relays per second of the run. */
  rps: number;
  bare: Figures;
  /** Both relays' requests per second over the bare proxy's at 16 connections, the same submits offered. */
  ratio: number;
  check: TwoProcessCheck;
}

export interface TwoProcessCheck {
  tasks: number;
  hostRows: number;
  ledgerHolds: number;
  /** Tasks without exactly one hold row in the ledger. */
  tasksNotHeldOnce: number;
  /** Sum of the tasks' holds, of the ledger's hold rows (negated), and the balance's fall. */
  taskHolds: number;
  ledgerHoldSum: number;
  balanceFall: number;
  endBalance: number;
  /** 2xx answers of both relays, which must equal the tasks. */
  accepted: number;
  refused402: number;
  held: boolean;
}

/** A settling relay after its run: until no task of it was queued or running, and its CPU counting that time. */
export interface Settled {
  /** Milliseconds after the run until no task was queued or running (at most 30 s), and how many still were then. */
  settleMs: number;
  unsettled: number;
  /** The relay's CPU per answered request, its settlements after the run included. */
  cpuUsPerRequestSettled: number;
}

export interface DispatchFigures {
  database: string;
  connections: number;
  /** Callers whose tokens the submits take in turn. */
  callers: number;
  /** The account's concurrency for the model version of the small submit. */
  cap: number;
  reconcilerIntervalMs: number;
  /**
   * The relay with the cap and its reconciler; of its 2xx answers, those queued (no free slot) and those
   * sent to Kling at once; its other answers by HTTP status and Kling-style code ("429 1303").
   */
  capped: Figures & { queued: number; sentAtOnce: number; refused: Record<string, number>; cpuUsPerRequestSettled: number };
  /** The same relay with its reconciler and no cap: the completion work without the dispatch. */
  settling: Figures & Settled;
  /** The relay as the submit run measures it (no cap, no reconciler), and the bare proxy measured just before it. */
  uncapped: Figures;
  bare: Figures;
  /** capped rps / uncapped rps, capped rps / settling rps, capped rps / bare rps. */
  ratio: number;
  settlingRatio: number;
  bareRatio: number;
  /** Latency the cap adds over the uncapped relay, and over the settling one. */
  addedP50Ms: number;
  addedP99Ms: number;
  addedP99OverSettlingMs: number;
  /** Milliseconds after the capped run until no task was queued or running, and how many still were then. */
  settleMs: number;
  unsettled: number;
}

export interface Target {
  name: string;
  target: string;
  value: string;
  met: boolean;
}

export type DatabasePair = Pair & { database: string; connections: number };
export type RatePair = DatabasePair & { offeredRps: number };
export type CallersPair = DatabasePair & { callers: number };

export interface BenchResults {
  version: number;
  startedAt: string;
  command: string;
  quick: boolean;
  durationSeconds: number;
  machine: { cpus: number; cpuModel: string; memoryBytes: number; platform: string; node: string; loadBefore: number[]; loadAfter: number[]; /** The servers under test had a CPU of their own (BENCH_PIN). */ pinned?: boolean };
  submit: DatabasePair[];
  submitManyCallers: CallersPair[];
  submitAtRate: RatePair[];
  query: DatabasePair[];
  /** The 10 MB body (SQLite), when that scenario ran. */
  largeBody: { bodyBytes: number; inFlight: number; relay: LargeFigures; bare: LargeFigures; addedMs: number } | undefined;
  /** The burst of junk bodies (SQLite), when that scenario ran. */
  junkBody: (JunkFigures & { bodyBytes: number; requests: number; inFlight: number }) | undefined;
  twoProcess: TwoProcessFigures[];
  dispatch: DispatchFigures[];
  tableSizes: { rows: number; seedMs: number; relay: Figures }[];
  lookups: { tasks: number; seedMs: number; relay: Figures }[];
  targets: Target[];
}
