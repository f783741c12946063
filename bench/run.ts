/**
 * `npm run bench`: the relay against a bare proxy (the physical limit), both in front of the Kling
 * sandbox in instant mode, each server in its own process, driven by autocannon from this one.
 * Prints a table and writes bench/results.json. docs/performance.md explains the figures.
 *
 * Environment: BENCH_QUICK=1 (a smoke run of a few seconds: short runs, small tables),
 * BENCH_DURATION (seconds per measured run, default 10), BENCH_CONNECTIONS (default 1,16,64), BENCH_ROWS (table sizes, default
 * 1000,100000,1000000), BENCH_MYSQL_URL / BENCH_PG_URL (also measure on that database: its bench
 * tables are dropped and recreated), BENCH_OUT (results path), BENCH_PROFILE=dir (the servers run
 * with --cpu-prof and write their profiles there), BENCH_SCENARIOS (a subset of
 * submit,callers,rate,query,large,junk,tables,lookup,two-process,dispatch, e.g. to profile one path; two-process runs on
 * MariaDB/PostgreSQL only), BENCH_DISPATCH_CAP (the account's concurrency in the dispatch run, default 2048),
 * BENCH_TWO_PROCESS_SUBMITS (submits offered to each of the two relay processes,
 * default 4000), BENCH_RATE (requests/s offered to both
 * servers in the equal-rate run; default 40% of the relay's saturated submit rate at 16 connections),
 * BENCH_LOOKUP_ROWS (tasks of the one caller in the lookup run, default 1000,1000000), BENCH_SLICES (parts
 * a run driven as fast as the servers answer is measured in, relay and bare proxy in turn, default 5).
 */
import autocannon from 'autocannon';
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BENCH_CALLERS, BENCH_TOKEN, DISPATCH_RECONCILE_MS, SMALL_BODY, callerToken, junkBody, largeBody } from './config.js';
import type { Knex } from 'knex';
import { QUEUED_MESSAGE } from '../lib/task/life.js';
import { ACTIVE_STATES } from '../lib/task/states.js';
import { connect } from './database.js';
import { cpuSnapshot, databaseUsBetween } from './cpu.js';
import { seed } from './seed.js';
import { cpusFor, pinSelf, pinned } from './pin.js';
import type { ChildMessage } from './servers.js';
import type { BenchResults, CallersPair, DatabasePair, DispatchFigures, Figures, JunkFigures, LargeFigures, Pair, RatePair, Settled, Target, TwoProcessCheck, TwoProcessFigures } from './results.js';

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.env.BENCH_QUICK === '1';
const duration = Number(process.env.BENCH_DURATION ?? (quick ? 1 : 10));
const warmup = quick ? 0.3 : 2;
/** Parts a run driven as fast as the servers answer is measured in, relay and bare proxy in turn. */
const slices = Number(process.env.BENCH_SLICES ?? (quick ? 2 : 5));
const connectionCounts = (process.env.BENCH_CONNECTIONS ?? (quick ? '16' : '1,16,64')).split(',').map(Number);
const tableSizes = (process.env.BENCH_ROWS ?? (quick ? '100,1000' : '1000,100000,1000000')).split(',').map(Number);
const LARGE_BYTES = 10 * 1024 * 1024;
/** Requests in flight at once while the peak RSS of a 10 MB body is measured. */
const LARGE_IN_FLIGHT = 4;
const largeRequests = quick ? 4 : 24;
const outFile = resolve(process.env.BENCH_OUT ?? join(here, 'results.json'));
const profileDir = process.env.BENCH_PROFILE ? resolve(process.env.BENCH_PROFILE) : undefined;
const scenarios = new Set((process.env.BENCH_SCENARIOS ?? 'submit,callers,rate,query,large,junk,tables,lookup,two-process,dispatch').split(','));
/**
 * The account's concurrency cap in the dispatch run: above the tasks active at once at the relay's
 * SQLite rate (each lives about two reconciler intervals), so that a submit rarely finds no free slot.
 */
const dispatchCap = Number(process.env.BENCH_DISPATCH_CAP ?? 2048);
/** Connections of the dispatch run (the targets' 16). */
const DISPATCH_CONNECTIONS = 16;
/** Submits offered to each of the two relay processes of the two-process run; the balance covers 3/4 of all of them. */
const twoProcessSubmits = Number(process.env.BENCH_TWO_PROCESS_SUBMITS ?? (quick ? 200 : 4000));
/** Requests of the burst of junk bodies (LARGE_IN_FLIGHT at a time). */
const JUNK_REQUESTS = quick ? 4 : 16;
/** How many tasks the one caller of the lookup run has. */
const lookupSizes = (process.env.BENCH_LOOKUP_ROWS ?? (quick ? '100,1000' : '1000,1000000')).split(',').map(Number);
/** Connections of the many-callers run. */
const CALLERS_CONNECTIONS = 16;
/** Connections of the equal-rate run (the targets' 16). */
const RATE_CONNECTIONS = 16;
const SUBMIT_PATH = '/kling/v1/videos/text2video';
const HEADERS = { authorization: `Bearer ${BENCH_TOKEN}`, 'content-type': 'application/json' };

// ---- server processes ----

interface Server {
  url: string;
  ask(cmd: string): Promise<{ rss: number; peak: number; cpuUs: number }>;
  stop(): Promise<void>;
}

function startServer(role: 'sandbox' | 'relay' | 'bare', args: string[] = []): Promise<Server> {
  const execArgv = ['--import', import.meta.resolve('tsx'), '--expose-gc'];
  // One folder per role: tsx's loader thread writes a profile of its own next to the main thread's.
  if (profileDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${join(profileDir, role)}`);
  const child: ChildProcess = fork(join(here, 'servers.ts'), [role, ...args], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolveStart, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`bench ${role} server exited with ${String(code)} before it was ready`));
    child.once('exit', onExit);
    child.once('message', (message: ChildMessage) => {
      if ('error' in message) {
        reject(new Error(`bench ${role} server failed: ${message.error}`));
        return;
      }
      if (!('ready' in message)) return;
      child.off('exit', onExit);
      resolveStart({
        url: message.url,
        ask: (cmd) =>
          new Promise((answer) => {
            child.once('message', (reply: ChildMessage) => answer(reply as { rss: number; peak: number; cpuUs: number }));
            child.send({ cmd });
          }),
        stop: () =>
          new Promise((stopped) => {
            if (child.exitCode !== null) return stopped();
            child.once('exit', () => stopped());
            child.send({ cmd: 'stop' });
          }),
      });
    });
  });
}

// ---- load ----

interface Load {
  path: string;
  method?: 'GET' | 'POST';
  body?: string;
  connections: number;
  seconds?: number;
  amount?: number;
  /** Tokens to send in turn, one request after another (a caller each); the bench user's when absent. */
  tokens?: readonly string[];
  /** Called with each answer's status and body (autocannon then keeps the bodies). */
  onAnswer?: (status: number, body: string) => void;
}

/** autocannon's request setup that sends `tokens` in turn, one per request, over every connection. */
function inTurn(tokens: readonly string[]): autocannon.Request {
  let next = 0;
  return { setupRequest: (req) => ({ ...req, headers: { ...req.headers, authorization: `Bearer ${tokens[next++ % tokens.length] ?? ''}` } }) };
}

async function drive(url: string, load: Load): Promise<Figures> {
  const result = await autocannon({
    url: url + load.path,
    method: load.method ?? 'POST',
    headers: HEADERS,
    ...(load.body !== undefined ? { body: load.body } : {}),
    ...(load.tokens !== undefined || load.onAnswer !== undefined
      ? { requests: [{ ...(load.tokens !== undefined ? inTurn(load.tokens) : {}), ...(load.onAnswer !== undefined ? { onResponse: load.onAnswer } : {}) }] }
      : {}),
    connections: load.connections,
    ...(load.amount !== undefined ? { amount: load.amount } : { duration: load.seconds ?? duration }),
    timeout: 30,
  });
  return {
    rps: round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    mean: round(result.latency.mean),
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

/**
 * An open-loop load: requests sent at evenly spaced moments (`rate` per second over at most
 * `connections` keep-alive sockets), each request's latency counted from the moment it was due, so a
 * server that falls behind pays for the wait (no coordinated omission). autocannon's own rate option
 * sends each second's requests in a burst at its start, which measures the burst instead.
 */
async function driveAtRate(url: string, load: Load & { rate: number }): Promise<Figures> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: load.connections });
  const target = new URL(url + load.path);
  const body = load.body === undefined ? undefined : Buffer.from(load.body);
  const headers = { ...HEADERS, ...(body ? { 'content-length': String(body.length) } : {}) };
  const total = Math.max(1, Math.round(load.rate * (load.seconds ?? duration)));
  const latencies: number[] = [];
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  const one = (due: number): Promise<void> =>
    new Promise((done) => {
      const request = http.request(target, { method: load.method ?? 'POST', headers, agent }, (response) => {
        response.resume();
        response.on('end', () => {
          latencies.push(performance.now() - due);
          if ((response.statusCode ?? 0) >= 200 && (response.statusCode ?? 0) < 300) ok++;
          else non2xx++;
          done();
        });
      });
      request.on('error', () => {
        errors++;
        done();
      });
      request.end(body);
    });
  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / load.rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(one(due));
  }
  await Promise.all(inFlight);
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0, 1);
  const mean = latencies.reduce((sum, l) => sum + l, 0) / Math.max(latencies.length, 1);
  return { rps: round((ok + non2xx) / elapsed), p50: at(0.5), p99: at(0.99), mean: round(mean), ok, non2xx, errors, timeouts: 0 };
}

/** drive(), with the server's CPU time per request. */
async function measure(server: Server, load: Load & { rate?: number }): Promise<Figures> {
  const before = await server.ask('usage');
  const cpuBefore = cpuSnapshot();
  const figures = load.rate === undefined ? await drive(server.url, load) : await driveAtRate(server.url, { ...load, rate: load.rate });
  const cpuAfter = cpuSnapshot();
  const after = await server.ask('usage');
  const answered = figures.ok + figures.non2xx;
  const per = (us: number): number => (answered > 0 ? Math.round(us / answered) : 0);
  const databaseUs = databaseUsBetween(cpuBefore, cpuAfter);
  return {
    ...figures,
    cpuUsPerRequest: per(after.cpuUs - before.cpuUs),
    machineCpuUsPerRequest: per(cpuAfter.machineUs - cpuBefore.machineUs),
    ...(databaseUs !== undefined ? { databaseCpuUsPerRequest: per(databaseUs) } : {}),
  };
}

async function warm(url: string, load: Load): Promise<void> {
  await drive(url, { ...load, seconds: warmup, amount: undefined });
}

function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

async function json(url: string, init: RequestInit): Promise<Record<string, unknown>> {
  const res = await fetch(url, { ...init, headers: HEADERS });
  const body = (await res.json()) as Record<string, unknown>;
  if (res.status !== 200) throw new Error(`${init.method ?? 'GET'} ${url} answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

// ---- scenarios ----

function pair(relay: Figures, bare: Figures): Pair {
  return { relay, bare, ratio: round(relay.rps / Math.max(bare.rps, 1e-9), 3), addedP50Ms: round(relay.p50 - bare.p50, 2), addedP99Ms: round(relay.p99 - bare.p99, 2) };
}

/**
 * Relay and bare proxy take turns: after a warm-up of each, a run driven as fast as each server
 * answers is measured in `slices` parts, bare proxy then relay, so that a change in the machine's
 * speed during the run (on a shared machine, by half within a minute) reaches both alike. A run at an
 * offered rate is measured in one part each.
 */
async function compare(relay: Server, bare: Server, load: Load & { rate?: number }): Promise<Pair> {
  await warm(bare.url, load);
  if (load.rate !== undefined || slices <= 1) {
    const b = await measure(bare, load);
    await warm(relay.url, load);
    return pair(await measure(relay, load), b);
  }
  await warm(relay.url, load);
  const part = { ...load, seconds: (load.seconds ?? duration) / slices };
  const b: Figures[] = [];
  const r: Figures[] = [];
  for (let i = 0; i < slices; i++) {
    b.push(await measure(bare, part));
    r.push(await measure(relay, part));
  }
  return pair(combined(r), combined(b));
}

/**
 * The parts of one run as one: counts summed, requests per second averaged (the parts are equally
 * long), and the latencies and the CPU per request averaged weighted by each part's answers (a
 * part's p50 and p99 are its own: averaged, they approximate the run's).
 */
function combined(parts: readonly Figures[]): Figures {
  const answers = parts.map((f) => f.ok + f.non2xx);
  const total = answers.reduce((sum, n) => sum + n, 0);
  const weighted = (value: (f: Figures) => number | undefined, digits: number): number | undefined => {
    if (total === 0 || parts.some((f) => value(f) === undefined)) return undefined;
    return round(parts.reduce((sum, f, i) => sum + (value(f) ?? 0) * (answers[i] ?? 0), 0) / total, digits);
  };
  const sum = (value: (f: Figures) => number): number => parts.reduce((acc, f) => acc + value(f), 0);
  const optional = (name: string, value: number | undefined): Record<string, number> => (value === undefined ? {} : { [name]: value });
  return {
    rps: round(sum((f) => f.rps) / Math.max(parts.length, 1)),
    p50: weighted((f) => f.p50, 1) ?? 0,
    p99: weighted((f) => f.p99, 1) ?? 0,
    mean: weighted((f) => f.mean, 1) ?? 0,
    ok: sum((f) => f.ok),
    non2xx: sum((f) => f.non2xx),
    errors: sum((f) => f.errors),
    timeouts: sum((f) => f.timeouts),
    ...optional('cpuUsPerRequest', weighted((f) => f.cpuUsPerRequest, 0)),
    ...optional('machineCpuUsPerRequest', weighted((f) => f.machineCpuUsPerRequest, 0)),
    ...optional('databaseCpuUsPerRequest', weighted((f) => f.databaseCpuUsPerRequest, 0)),
  };
}

/** A task final at Kling and, for the relay, in its database (one query refreshes it there). */
async function finishedTask(server: Server, relay: boolean): Promise<string> {
  const created = await json(server.url + SUBMIT_PATH, { method: 'POST', body: SMALL_BODY });
  const taskId = String((created.data as { task_id: unknown }).task_id);
  const queried = await json(`${server.url}${SUBMIT_PATH}/${taskId}`, { method: 'GET' });
  const status = (queried.data as { task_status?: unknown }).task_status;
  if (status !== 'succeed') throw new Error(`the ${relay ? 'relay' : 'bare proxy'}'s task ${taskId} is ${String(status)}, not succeed`);
  return taskId;
}

async function databaseRun(name: string, database: string, sandbox: Server, bare: Server): Promise<{ submit: DatabasePair[]; callers: CallersPair[]; rate: RatePair[]; query: DatabasePair[]; relay: Server }> {
  const db = connect(database);
  await seed(db, 0);
  await db.destroy();
  const relay = await startServer('relay', [sandbox.url, database]);
  const submit = [];
  for (const connections of scenarios.has('submit') ? connectionCounts : []) {
    submit.push({ database: name, connections, ...(await compare(relay, bare, { path: SUBMIT_PATH, body: SMALL_BODY, connections })) });
    console.error(`  ${name} submit x${connections} done`);
  }
  // Every submit above is the one bench user's, so on MariaDB/PostgreSQL each hold waits for the lock
  // on that user's balance row; a host has many callers, each with a row of its own.
  const callers: CallersPair[] = [];
  if (scenarios.has('callers')) {
    const load = { path: SUBMIT_PATH, body: SMALL_BODY, connections: CALLERS_CONNECTIONS, tokens: Array.from({ length: BENCH_CALLERS }, (_, i) => callerToken(i)) };
    callers.push({ database: name, connections: CALLERS_CONNECTIONS, callers: BENCH_CALLERS, ...(await compare(relay, bare, load)) });
    console.error(`  ${name} submit by ${BENCH_CALLERS} callers x${CALLERS_CONNECTIONS} done`);
  }
  // At saturation each server's latency is mostly its own queue (connections / throughput), so the
  // added p99 there restates the throughput ratio. Offered the same rate, below both limits, the
  // added latency is what the relay's own work costs a request.
  const rate: RatePair[] = [];
  if (scenarios.has('rate')) {
    const saturated = submit.find((r) => r.connections === RATE_CONNECTIONS)?.relay.rps;
    const offeredRps = Number(process.env.BENCH_RATE) || Math.max(10, Math.round((saturated ?? 250) * 0.4));
    rate.push({ database: name, connections: RATE_CONNECTIONS, offeredRps, ...(await compare(relay, bare, { path: SUBMIT_PATH, body: SMALL_BODY, connections: RATE_CONNECTIONS, rate: offeredRps })) });
    console.error(`  ${name} submit at ${offeredRps} r/s done`);
  }
  const query = [];
  const relayTask = scenarios.has('query') ? await finishedTask(relay, true) : '';
  const bareTask = scenarios.has('query') ? await finishedTask(bare, false) : '';
  for (const connections of scenarios.has('query') ? connectionCounts : []) {
    const b = await (async () => {
      const load = { path: `${SUBMIT_PATH}/${bareTask}`, method: 'GET' as const, connections };
      await warm(bare.url, load);
      return measure(bare, load);
    })();
    const load = { path: `${SUBMIT_PATH}/${relayTask}`, method: 'GET' as const, connections };
    await warm(relay.url, load);
    const r = await measure(relay, load);
    query.push({ database: name, connections, ...pair(r, b) });
    console.error(`  ${name} query x${connections} done`);
  }
  return { submit, callers, rate, query, relay };
}

async function largeRun(server: Server, body: string): Promise<LargeFigures> {
  // Memory first: the server has served small requests only (warm), and once 10 MB bodies have passed
  // the heap keeps their pages, so a later burst would find its memory already resident and look free.
  const before = await server.ask('peak-reset');
  await drive(server.url, { path: '/kling/v1/videos/image2video', body, connections: LARGE_IN_FLIGHT, amount: LARGE_IN_FLIGHT });
  const after = await server.ask('peak');
  const growth = Math.max(0, after.peak - before.rss);
  await drive(server.url, { path: '/kling/v1/videos/image2video', body, connections: 1, amount: 2 });
  const latency = await drive(server.url, { path: '/kling/v1/videos/image2video', body, connections: 1, amount: largeRequests });
  return { latency, peakGrowthBytes: growth, perRequestFactor: round(growth / (LARGE_IN_FLIGHT * body.length), 2) };
}

/**
 * A burst of `{"prompt":"x","junk":[0,0,...]}` bodies as large as the valid one, LARGE_IN_FLIGHT at a
 * time, on a relay process of its own (warmed with small submits only), so that its peak RSS compares
 * with the valid body's first burst.
 */
async function junkRun(sandbox: Server, database: string, bytes: number): Promise<JunkFigures & { bodyBytes: number }> {
  const relay = await startServer('relay', [sandbox.url, database]);
  try {
    await warm(relay.url, { path: SUBMIT_PATH, body: SMALL_BODY, connections: 4 });
    const body = junkBody(bytes);
    const before = await relay.ask('peak-reset');
    const burst = await drive(relay.url, { path: SUBMIT_PATH, body, connections: LARGE_IN_FLIGHT, amount: JUNK_REQUESTS });
    const after = await relay.ask('peak');
    const growth = Math.max(0, after.peak - before.rss);
    const answeringAfter = await json(relay.url + SUBMIT_PATH, { method: 'POST', body: SMALL_BODY }).then(() => true, () => false);
    return { bodyBytes: body.length, peakGrowthBytes: growth, perRequestFactor: round(growth / (LARGE_IN_FLIGHT * body.length), 2), refused: burst.non2xx, answeringAfter };
  } finally {
    await relay.stop();
  }
}

/**
 * GET of one finished task by Kling's id, for a caller who owns every seeded task: the lookup must
 * not walk the caller's tasks. One connection, so the latency is the relay's and the database's alone.
 */
async function lookupRun(sandbox: Server, dir: string): Promise<{ tasks: number; seedMs: number; relay: Figures }[]> {
  const out = [];
  for (const rows of lookupSizes) {
    const file = join(dir, `lookup-${rows}.sqlite`);
    const db = connect(file);
    const seeded = await seed(db, rows, 1);
    await db.destroy();
    const relay = await startServer('relay', [sandbox.url, file]);
    const load = { path: `${SUBMIT_PATH}/seed-${Math.ceil(rows / 2)}`, method: 'GET' as const, connections: 1 };
    await warm(relay.url, load);
    const figures = await measure(relay, load);
    await relay.stop();
    if (figures.ok === 0 || figures.non2xx > 0) throw new Error(`lookup of a seeded task failed: ${JSON.stringify(figures)}`);
    out.push({ tasks: rows, seedMs: seeded.ms, relay: figures });
    console.error(`  a caller with ${rows} tasks done (seeded in ${seeded.ms} ms)`);
  }
  return out;
}

async function tableSizeRun(sandbox: Server, dir: string): Promise<{ rows: number; seedMs: number; relay: Figures }[]> {
  const out = [];
  for (const rows of tableSizes) {
    const file = join(dir, `rows-${rows}.sqlite`);
    const db = connect(file);
    const seeded = await seed(db, rows);
    await db.destroy();
    const relay = await startServer('relay', [sandbox.url, file]);
    const load = { path: SUBMIT_PATH, body: SMALL_BODY, connections: 16 };
    await warm(relay.url, load);
    const figures = await drive(relay.url, load);
    await relay.stop();
    out.push({ rows, seedMs: seeded.ms, relay: figures });
    console.error(`  ${rows} rows done (seeded in ${seeded.ms} ms)`);
  }
  return out;
}

/**
 * Two relay processes on one MariaDB/PostgreSQL database, each offered the same number of submits
 * (8 connections each, 16 in all) by the same caller, whose balance covers three quarters of them;
 * then the money guarantees are checked on the database: each task has one hold row, the holds of the
 * tasks, the ledger's holds and the balance's fall are one sum, the balance is not negative, and every
 * 2xx answer is a task.
 */
async function twoProcessRun(name: string, database: string, sandbox: Server, bare: Server): Promise<TwoProcessFigures> {
  const db = connect(database);
  const { userId } = await seed(db, 0);
  try {
    const relays = [await startServer('relay', [sandbox.url, database]), await startServer('relay', [sandbox.url, database])];
    try {
      // The hold of one small submit, read off a task: the balance is then set to cover 3/4 of all.
      await json(relays[0]!.url + SUBMIT_PATH, { method: 'POST', body: SMALL_BODY });
      const [first] = (await db('kling_relay_tasks').select('hold_quota')) as { hold_quota: unknown }[];
      const hold = Number(first?.hold_quota);
      for (const table of ['kling_relay_ledger', 'kling_relay_tasks', 'videos']) await db(table).delete();
      const startBalance = Math.floor((2 * twoProcessSubmits * 3) / 4) * hold;
      await db('users').where({ id: userId }).update({ quota: startBalance });
      const bareFigures = await measure(bare, { path: SUBMIT_PATH, body: SMALL_BODY, connections: 16, amount: 2 * twoProcessSubmits });
      const started = performance.now();
      const figures = await Promise.all(relays.map((relay) => measure(relay, { path: SUBMIT_PATH, body: SMALL_BODY, connections: 8, amount: twoProcessSubmits })));
      const seconds = (performance.now() - started) / 1000;
      const answered = figures.reduce((sum, f) => sum + f.ok + f.non2xx, 0);
      const rps = round(answered / seconds);
      const check = await checkMoney(db, userId, startBalance, figures);
      return { database: name, offeredEach: twoProcessSubmits, startBalance, relays: figures, rps, bare: bareFigures, ratio: round(rps / Math.max(bareFigures.rps, 1e-9), 3), check };
    } finally {
      for (const relay of relays) await relay.stop();
    }
  } finally {
    await db.destroy();
  }
}

async function checkMoney(db: Knex, userId: number, startBalance: number, figures: Figures[]): Promise<TwoProcessCheck> {
  const count = async (query: Knex.QueryBuilder): Promise<number> => Number(((await query.count({ n: '*' })) as { n: unknown }[])[0]?.n);
  const sum = async (query: Knex.QueryBuilder, column: string): Promise<number> => Number(((await query.sum({ s: column })) as { s: unknown }[])[0]?.s ?? 0);
  const tasks = await count(db('kling_relay_tasks'));
  const hostRows = await count(db('videos'));
  const ledgerHolds = await count(db('kling_relay_ledger').where({ kind: 'hold' }));
  const heldOnce = await count(db('kling_relay_tasks as t').whereRaw("(select count(*) from kling_relay_ledger l where l.task_id = t.id and l.kind = 'hold') = 1"));
  const taskHolds = await sum(db('kling_relay_tasks'), 'hold_quota');
  const ledgerHoldSum = -(await sum(db('kling_relay_ledger').where({ kind: 'hold' }), 'amount'));
  const endBalance = Number(((await db('users').where({ id: userId }).select('quota')) as { quota: unknown }[])[0]?.quota);
  const accepted = figures.reduce((total, f) => total + f.ok, 0);
  const refused402 = figures.reduce((total, f) => total + f.non2xx, 0);
  const balanceFall = startBalance - endBalance;
  const held = tasks === accepted && hostRows === tasks && ledgerHolds === tasks && heldOnce === tasks && taskHolds === ledgerHoldSum && ledgerHoldSum === balanceFall && endBalance >= 0;
  return { tasks, hostRows, ledgerHolds, tasksNotHeldOnce: tasks - heldOnce, taskHolds, ledgerHoldSum, balanceFall, endBalance, accepted, refused402, held };
}

/** How many tasks are queued or running. */
async function activeTasks(db: Knex): Promise<number> {
  return Number(((await db('kling_relay_tasks').whereIn('state', ACTIVE_STATES).count({ n: '*' })) as { n: unknown }[])[0]?.n);
}

/**
 * After a run of a relay that settles its tasks: waits until none is queued or running (30 s at most),
 * and counts the relay's CPU of that wait into its CPU per answered request, so that a relay that
 * leaves its settlements for after the run does not look cheaper than one that keeps up.
 */
async function untilSettled(relay: Server, db: Knex, figures: Figures): Promise<Settled> {
  const ended = performance.now();
  const before = await relay.ask('usage');
  let unsettled = await activeTasks(db);
  while (unsettled > 0 && performance.now() - ended < 30_000) {
    await new Promise((resolve) => setTimeout(resolve, DISPATCH_RECONCILE_MS));
    unsettled = await activeTasks(db);
  }
  const after = await relay.ask('usage');
  const answered = figures.ok + figures.non2xx;
  const drainUs = after.cpuUs - before.cpuUs;
  return { settleMs: Math.round(performance.now() - ended), unsettled, cpuUsPerRequestSettled: answered > 0 ? Math.round((figures.cpuUsPerRequest ?? 0) + drainUs / answered) : 0 };
}

/** A relay process started with `args` on a freshly seeded database, given to `use`, then stopped. */
async function freshRelay<T>(db: Knex, args: string[], use: (relay: Server) => Promise<T>): Promise<T> {
  await seed(db, 0);
  const relay = await startServer('relay', args);
  try {
    return await use(relay);
  } finally {
    await relay.stop();
  }
}

/**
 * The small submit at 16 connections, by BENCH_CALLERS callers in turn, on a relay whose account has a concurrency cap, beside the same
 * relay without one and the bare proxy: what capacity-aware dispatch costs a submit. The capped relay
 * runs its reconciler every DISPATCH_RECONCILE_MS, so that tasks (final at once in the sandbox) settle
 * and free their slots and its active set stays that of a live host; the settling relay runs the same
 * reconciler without a cap, so that the two differ by the dispatch alone.
 */
async function dispatchRun(name: string, database: string, sandbox: Server, bare: Server): Promise<DispatchFigures> {
  // Each server's answers are read whole, the capped relay's to tell queued from sent: all alike, so
  // that the load generator's own work is the same for every server. The callers take turns: one
  // caller alone would meet the queue's per-caller limit on tasks running at once, not the cap.
  const tokens = Array.from({ length: BENCH_CALLERS }, (_, i) => callerToken(i));
  const load = { path: SUBMIT_PATH, body: SMALL_BODY, connections: DISPATCH_CONNECTIONS, tokens, onAnswer: (): void => undefined };
  const db = connect(database);
  try {
    const uncapped = await freshRelay(db, [sandbox.url, database], (relay) => compare(relay, bare, load));
    const settling = await freshRelay(db, [sandbox.url, database, 'settle'], async (relay) => {
      await warm(relay.url, load);
      const figures = await measure(relay, load);
      return { ...figures, ...(await untilSettled(relay, db, figures)) };
    });
    return await freshRelay(db, [sandbox.url, database, 'settle', String(dispatchCap)], async (relay) => {
      await warm(relay.url, load);
      let queued = 0;
      let sentAtOnce = 0;
      const refused: Record<string, number> = {};
      const onAnswer = (status: number, body: string): void => {
        const answer = JSON.parse(body) as { code?: unknown; data?: { task_status_msg?: unknown } };
        if (status < 200 || status >= 300) {
          const key = `${status} ${String(answer.code)}`;
          refused[key] = (refused[key] ?? 0) + 1;
        } else if (answer.data?.task_status_msg === QUEUED_MESSAGE) queued++;
        else sentAtOnce++;
      };
      const capped = await measure(relay, { ...load, onAnswer });
      const settled = await untilSettled(relay, db, capped);
      const ratioTo = (other: Figures): number => round(capped.rps / Math.max(other.rps, 1e-9), 3);
      return {
        database: name, connections: DISPATCH_CONNECTIONS, callers: BENCH_CALLERS, cap: dispatchCap, reconcilerIntervalMs: DISPATCH_RECONCILE_MS,
        capped: { ...capped, queued, sentAtOnce, refused, cpuUsPerRequestSettled: settled.cpuUsPerRequestSettled }, settling, uncapped: uncapped.relay, bare: uncapped.bare,
        ratio: ratioTo(uncapped.relay), settlingRatio: ratioTo(settling), bareRatio: ratioTo(uncapped.bare),
        addedP50Ms: round(capped.p50 - uncapped.relay.p50, 2), addedP99Ms: round(capped.p99 - uncapped.relay.p99, 2), addedP99OverSettlingMs: round(capped.p99 - settling.p99, 2),
        settleMs: settled.settleMs, unsettled: settled.unsettled,
      };
    });
  } finally {
    await db.destroy();
  }
}

// ---- report ----

function pad(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => String(c).padStart(widths[i] ?? 8)).join('  ');
}

function printPairs(title: string, rows: DatabasePair[]): void {
  const widths = [8, 5, 10, 8, 8, 10, 8, 8, 7, 9, 12, 14, 9];
  console.log(`\n${title}`);
  console.log(pad(['db', 'conn', 'relay r/s', 'p50', 'p99', 'bare r/s', 'p50', 'p99', 'ratio', '+p99 ms', 'cpu us/req', 'machine us/req', 'db us/req'], widths));
  for (const r of rows) {
    const cpu = `${r.relay.cpuUsPerRequest ?? '?'}/${r.bare.cpuUsPerRequest ?? '?'}`;
    const machine = `${r.relay.machineCpuUsPerRequest ?? '?'}/${r.bare.machineCpuUsPerRequest ?? '?'}`;
    console.log(pad([r.database, r.connections, r.relay.rps, r.relay.p50, r.relay.p99, r.bare.rps, r.bare.p50, r.bare.p99, `${Math.round(r.ratio * 100)}%`, r.addedP99Ms, cpu, machine, r.relay.databaseCpuUsPerRequest ?? '?'], widths));
  }
}

async function main(): Promise<void> {
  const started = new Date();
  const loadBefore = os.loadavg();
  // Before any server starts: they inherit these CPUs, and the servers under test move to their own.
  if (pinned) pinSelf('others');
  const dir = mkdtempSync(join(os.tmpdir(), 'kling-relay-bench-'));
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const sandbox = await startServer('sandbox');
  const bare = await startServer('bare', [sandbox.url]);
  const databases: [string, string][] = [['sqlite', join(dir, 'bench.sqlite')]];
  if (process.env.BENCH_MYSQL_URL) databases.push(['mysql', process.env.BENCH_MYSQL_URL]);
  if (process.env.BENCH_PG_URL) databases.push(['pg', process.env.BENCH_PG_URL]);
  try {
    const submit: DatabasePair[] = [];
    const callers: CallersPair[] = [];
    const rate: RatePair[] = [];
    const query: DatabasePair[] = [];
    let large: BenchResults['largeBody'];
    let junk: BenchResults['junkBody'];
    const twoProcess: TwoProcessFigures[] = [];
    const dispatch: DispatchFigures[] = [];
    for (const [name, database] of databases) {
      console.error(`${name}: submits and queries`);
      const result = await databaseRun(name, database, sandbox, bare);
      submit.push(...result.submit);
      callers.push(...result.callers);
      rate.push(...result.rate);
      query.push(...result.query);
      if (name === 'sqlite' && scenarios.has('large')) {
        console.error('sqlite: 10 MB bodies');
        const body = largeBody(LARGE_BYTES);
        const b = await largeRun(bare, body);
        const r = await largeRun(result.relay, body);
        large = { bodyBytes: body.length, inFlight: LARGE_IN_FLIGHT, relay: r, bare: b, addedMs: round(r.latency.mean - b.latency.mean, 2) };
      }
      await result.relay.stop();
      if (name !== 'sqlite' && scenarios.has('two-process')) {
        console.error(`${name}: two relay processes on one database`);
        twoProcess.push(await twoProcessRun(name, database, sandbox, bare));
      }
      if (scenarios.has('dispatch')) {
        console.error(`${name}: submit under a concurrency cap of ${dispatchCap}`);
        dispatch.push(await dispatchRun(name, database, sandbox, bare));
      }
      if (name === 'sqlite' && scenarios.has('junk')) {
        console.error('sqlite: a burst of junk bodies');
        junk = { ...(await junkRun(sandbox, database, LARGE_BYTES)), requests: JUNK_REQUESTS, inFlight: LARGE_IN_FLIGHT };
      }
    }
    console.error('sqlite: table sizes');
    const tables = scenarios.has('tables') ? await tableSizeRun(sandbox, dir) : [];
    console.error('sqlite: lookups for one caller with many tasks');
    const lookups = scenarios.has('lookup') ? await lookupRun(sandbox, dir) : [];

    const at16 = (list: typeof submit): (typeof submit)[number] | undefined => list.find((r) => r.database === 'sqlite' && r.connections === 16);
    const s16 = at16(submit);
    const q16 = at16(query);
    const smallest = tables[0]?.relay;
    const largest = tables[tables.length - 1]?.relay;
    const targets: Target[] = [];
    if (s16) {
      targets.push({ name: 'submit throughput, relay / bare (SQLite, 16 connections)', target: '>= 50%', value: `${Math.round(s16.ratio * 100)}%`, met: s16.ratio >= 0.5 });
      targets.push({ name: 'submit p99 added over bare (SQLite, 16 connections, each as fast as it answers)', target: '<= 10 ms', value: `${s16.addedP99Ms} ms`, met: s16.addedP99Ms <= 10 });
    }
    const r16 = rate.find((r) => r.database === 'sqlite');
    if (r16) targets.push({ name: `submit p99 added over bare (SQLite, 16 connections, both offered ${r16.offeredRps} r/s)`, target: '<= 10 ms', value: `${r16.addedP99Ms} ms`, met: r16.addedP99Ms <= 10 });
    if (q16) targets.push({ name: 'finished-task query throughput, relay / bare (SQLite, 16 connections)', target: '>= 70%', value: `${Math.round(q16.ratio * 100)}%`, met: q16.ratio >= 0.7 });
    if (large) {
      targets.push({ name: '10 MB image2video submit, mean latency added over bare', target: '<= 50 ms', value: `${large.addedMs} ms`, met: large.addedMs <= 50 });
      targets.push({ name: '10 MB body, relay peak RSS growth per request in flight', target: '< 4x the body', value: `${large.relay.perRequestFactor}x (bare ${large.bare.perRequestFactor}x)`, met: large.relay.perRequestFactor < 4 });
    }
    if (junk) {
      const valid = large ? ` (valid body ${large.relay.perRequestFactor}x)` : '';
      const bounded = junk.answeringAfter && junk.refused === junk.requests && junk.perRequestFactor <= (large?.relay.perRequestFactor ?? 4);
      targets.push({ name: '10 MB junk body ({"junk":[0,0,...]}), relay peak RSS growth per request in flight, no more than a valid body of that size', target: '<= valid', value: `${junk.perRequestFactor}x${valid}`, met: bounded });
    }
    const fewest = lookups[0]?.relay;
    const most = lookups[lookups.length - 1]?.relay;
    if (fewest && most) {
      const flat = most.mean <= fewest.mean * 1.5 + 1;
      targets.push({ name: `task query latency for a caller with ${lookupSizes[0]} to ${lookupSizes[lookupSizes.length - 1]} tasks (flat: within 1.5x + 1 ms)`, target: 'flat', value: `${fewest.mean} -> ${most.mean} ms`, met: flat });
    }
    if (smallest && largest) {
      // Flat: the p50 at the largest table within 1.5x (+1 ms of timer noise) of the p50 at the smallest.
      const flat = largest.p50 <= smallest.p50 * 1.5 + 1;
      targets.push({ name: `submit p50 from ${tableSizes[0]} to ${tableSizes[tableSizes.length - 1]} rows (flat: within 1.5x + 1 ms)`, target: 'flat', value: `${smallest.p50} -> ${largest.p50} ms`, met: flat });
    }

    const results: BenchResults = {
      version: 1,
      startedAt: started.toISOString(),
      command: process.env.npm_lifecycle_event === 'bench' ? 'npm run bench' : `tsx bench/run.ts`,
      quick,
      durationSeconds: duration,
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model ?? 'unknown',
        memoryBytes: os.totalmem(),
        platform: `${os.platform()} ${os.release()}`,
        node: process.version,
        loadBefore: loadBefore.map((l) => round(l, 2)),
        loadAfter: os.loadavg().map((l) => round(l, 2)),
        pinned,
      },
      submit,
      submitManyCallers: callers,
      submitAtRate: rate,
      query,
      largeBody: large,
      junkBody: junk,
      twoProcess,
      dispatch,
      tableSizes: tables,
      lookups,
      targets,
    };
    mkdirSync(dirname(outFile), { recursive: true });
    writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);

    console.log(`kling-relay bench: ${results.machine.cpus} cpus (${results.machine.cpuModel}), node ${process.version}, load ${results.machine.loadBefore.join(' ')}, ${duration} s per run${pinned ? `, servers under test on cpu ${cpusFor('server')}, the rest on ${cpusFor('others')}` : ''}`);
    printPairs('text2video submit, small body (requests/s, latency ms)', submit);
    if (callers.length > 0) printPairs(`submit, small body, ${BENCH_CALLERS} callers in turn, each with a balance row of its own`, callers);
    if (rate.length > 0) {
      console.log(`\nsubmit offered the same rate to both servers (${rate.map((r) => `${r.database} ${r.offeredRps} r/s`).join(', ')})`);
      for (const r of rate) console.log(`  ${r.database} x${r.connections}: p50 ${r.relay.p50} / ${r.bare.p50} ms, p99 ${r.relay.p99} / ${r.bare.p99} ms (relay / bare), added p50 ${r.addedP50Ms} ms, p99 ${r.addedP99Ms} ms; cpu ${r.relay.cpuUsPerRequest ?? '?'} / ${r.bare.cpuUsPerRequest ?? '?'} us per request`);
    }
    printPairs('query of a finished task', query);
    if (large) {
      console.log(`\n10 MB image2video (${large.bodyBytes} bytes of JSON): mean latency relay ${large.relay.latency.mean} ms, bare ${large.bare.latency.mean} ms, added ${large.addedMs} ms`);
      console.log(`  peak RSS growth with ${LARGE_IN_FLIGHT} in flight: relay ${(large.relay.peakGrowthBytes / 2 ** 20).toFixed(0)} MB (${large.relay.perRequestFactor}x the body each), bare ${(large.bare.peakGrowthBytes / 2 ** 20).toFixed(0)} MB (${large.bare.perRequestFactor}x)`);
    }
    if (junk) {
      console.log(`\n${junk.requests} junk bodies of ${junk.bodyBytes} bytes, ${junk.inFlight} in flight: ${junk.refused} refused, peak RSS growth ${(junk.peakGrowthBytes / 2 ** 20).toFixed(0)} MB (${junk.perRequestFactor}x the body each), ${junk.answeringAfter ? 'answering after' : 'NOT answering after'}`);
    }
    for (const t of twoProcess) {
      const [a, b] = t.relays;
      console.log(`\ntwo relay processes on one ${t.database} database, ${t.offeredEach} submits offered to each (8 connections each), balance for 3/4 of them`);
      console.log(`  ${t.rps} r/s in all (bare proxy ${t.bare.rps} r/s at 16 connections, ${Math.round(t.ratio * 100)}%); p50 ${a?.p50} / ${b?.p50} ms, p99 ${a?.p99} / ${b?.p99} ms; cpu ${a?.cpuUsPerRequest} / ${b?.cpuUsPerRequest} us per request`);
      const c = t.check;
      console.log(`  ${c.accepted} accepted, ${c.refused402} refused; ${c.tasks} tasks, ${c.hostRows} host rows, ${c.ledgerHolds} ledger holds (${c.tasksNotHeldOnce} tasks not held once); holds ${c.taskHolds} = ledger ${c.ledgerHoldSum} = balance fall ${c.balanceFall}; balance ${c.endBalance}: ${c.held ? 'guarantees held' : 'GUARANTEES BROKEN'}`);
    }
    if (dispatch.length > 0) {
      const widths = [8, 8, 6, 6, 9, 6, 6, 9, 6, 6, 8, 8, 8, 19, 7, 8];
      console.log(`\nsubmit under a concurrency cap of ${dispatchCap}, reconciler every ${DISPATCH_RECONCILE_MS} ms, beside the same relay settling without a cap, the relay as above and the bare proxy (16 connections, ${BENCH_CALLERS} callers in turn)`);
      console.log(pad(['db', 'capped', 'p50', 'p99', 'settling', 'p50', 'p99', 'uncapped', 'p50', 'p99', 'bare', '/settl.', '/uncap.', 'cpu us/req c/s/u/b', 'queued', 'at once'], widths));
      for (const d of dispatch) {
        const cpu = [d.capped, d.settling, d.uncapped, d.bare].map((f) => f.cpuUsPerRequest ?? '?').join('/');
        const percent = (ratio: number): string => `${Math.round(ratio * 100)}%`;
        console.log(pad([d.database, d.capped.rps, d.capped.p50, d.capped.p99, d.settling.rps, d.settling.p50, d.settling.p99, d.uncapped.rps, d.uncapped.p50, d.uncapped.p99, d.bare.rps, percent(d.settlingRatio), percent(d.ratio), cpu, d.capped.queued, d.capped.sentAtOnce], widths));
        const refusals = Object.entries(d.capped.refused).map(([answer, n]) => `${n} x ${answer}`);
        const settled = (s: Pick<Settled, 'settleMs' | 'unsettled'>): string => (s.unsettled === 0 ? `every task settled ${s.settleMs} ms after the run` : `${s.unsettled} tasks still active ${s.settleMs} ms after the run`);
        console.log(`  capped: ${d.capped.non2xx} non-2xx${refusals.length > 0 ? ` (${refusals.join(', ')})` : ''}; ${settled(d)}; cpu us/req with its settlements ${d.capped.cpuUsPerRequestSettled}`);
        console.log(`  settling: ${settled(d.settling)}; cpu us/req with its settlements ${d.settling.cpuUsPerRequestSettled}`);
      }
    }
    console.log('\nsubmit with rows already in the tables (SQLite, 16 connections)');
    for (const t of tables) console.log(`  ${String(t.rows).padStart(8)} rows: ${t.relay.rps} r/s, p50 ${t.relay.p50} ms, p99 ${t.relay.p99} ms`);
    if (lookups.length > 0) console.log('\nquery of a finished task by a caller who owns every task (SQLite, 1 connection)');
    for (const l of lookups) console.log(`  ${String(l.tasks).padStart(8)} tasks: ${l.relay.rps} r/s, mean ${l.relay.mean} ms, p99 ${l.relay.p99} ms`);
    console.log('\ntargets');
    for (const t of targets) console.log(`  ${t.met ? 'met   ' : 'MISSED'} ${t.name}: ${t.value} (target ${t.target})`);
    console.log(`\nwritten to ${outFile}`);
  } finally {
    await bare.stop();
    await sandbox.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
