/**
 * The processes `npm run bench` measures, one role per process so that autocannon (in the parent)
 * never shares an event loop with a server, and the relay and the bare proxy are measured alike:
 *
 * - `sandbox`: the Kling sandbox in instant mode (tasks final at once), callbacks switched off and
 *   its history bounded, so it can take millions of creates without growing.
 * - `relay <sandboxUrl> <database> [settle [cap]]`: a host app with the relay mounted at /kling, the way an
 *   integrator mounts it: an in-memory token check, `relay.callback`, `relay.router`; logger silent.
 *   With `settle` the relay runs its reconciler (and so the queue's dispatcher) every DISPATCH_RECONCILE_MS,
 *   so that tasks settle and free their slots as at Kling; with `cap` too, the account has that `concurrency`.
 * - `bare <sandboxUrl>`: the physical limit: an Express app that parses JSON and forwards to the
 *   sandbox with the relay's own Kling client (same keep-alive agent, same JWT cache), nothing else.
 *
 * Each child reports `{ready, url}` over IPC and answers `{cmd: 'peak-reset'}` / `{cmd: 'peak'}`
 * (peak RSS since the reset, from /proc), `{cmd: 'usage'}` (CPU time used so far) and `{cmd: 'stop'}`.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDefaultHostTables, createKlingRelay, startKlingSandbox, type KlingRelay } from '../lib/index.js';
import { silentLogger } from '../lib/logger.js';
import { AccountPool } from '../lib/upstream/accounts.js';
import { KlingClient, UpstreamError } from '../lib/upstream/client.js';
import { connect } from './database.js';
import { pinSelf, pinned } from './pin.js';
import { BENCH_ACCOUNT, BENCH_CALLBACK_SECRET, BENCH_CALLERS, BENCH_PRICING, DISPATCH_RECONCILE_MS, callerName, callerToken } from './config.js';

export type ChildMessage = { ready: true; url: string } | { rss: number; peak: number; cpuUs: number } | { error: string };

function send(message: ChildMessage): void {
  process.send?.(message);
}

/** Resident set size now and its peak since the last reset (VmHWM), in bytes; Linux only for the peak. */
function memory(): { rss: number; peak: number; cpuUs: number } {
  const rss = process.memoryUsage.rss();
  const used = process.cpuUsage();
  const cpuUs = used.user + used.system;
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    return { rss, peak: hwm ? Number(hwm[1]) * 1024 : rss, cpuUs };
  } catch {
    return { rss, peak: rss, cpuUs };
  }
}

function resetPeak(): void {
  // "5" resets the peak RSS counter (VmHWM) to the current RSS: see proc(5), /proc/pid/clear_refs.
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // Not Linux: the peak then counts from the process start, which only overstates it.
  }
}

function listen(app: express.Express): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(0, '127.0.0.1', () => resolve(server));
    server.once('error', reject);
  });
}

/** Stops listening and drops the keep-alive connections the load left open. */
function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function urlOf(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function runSandbox(): Promise<() => Promise<void>> {
  const sandbox = await startKlingSandbox({ schedule: 'instant', accounts: [BENCH_ACCOUNT], history: 10_000 });
  // The relay's callbacks are not what is measured here (tasks last minutes at Kling, so their callbacks
  // do not come in the same second as the submit); in instant mode they would all land at once.
  sandbox.callbackMode({ drop: true });
  send({ ready: true, url: sandbox.url });
  return () => sandbox.close();
}

async function runRelay(sandboxUrl: string, database: string, settle: boolean, cap?: number): Promise<() => Promise<void>> {
  const db = connect(database);
  await createDefaultHostTables(db);
  const relay: KlingRelay = createKlingRelay({
    db,
    accounts: [{ id: 'bench', accessKey: BENCH_ACCOUNT.accessKey, secretKey: BENCH_ACCOUNT.secretKey, baseUrl: sandboxUrl, ...(cap !== undefined ? { concurrency: cap } : {}) }],
    callbackUrl: 'http://127.0.0.1:9/kling/callback',
    callbackSecret: BENCH_CALLBACK_SECRET,
    pricing: BENCH_PRICING,
    logger: silentLogger,
    ...(settle ? { reconciler: { intervalMs: DISPATCH_RECONCILE_MS } } : {}),
    // A caller may have as many tasks running as the account: the run measures the decision, and
    // its callers take turns so that none has an unusual share.
    ...(cap !== undefined ? { queue: { perCaller: cap } } : {}),
  });
  await relay.migrate();
  if (settle) relay.start();
  // The callers by token: the bench user, and the others of the many-callers run.
  const callers = new Map<string, { id: number; username: string }>();
  for (let i = 0; i < BENCH_CALLERS; i++) {
    const username = callerName(i);
    const user = (await db('users').where({ username }).first('id')) as { id: number } | undefined;
    if (!user) throw new Error(`the bench user ${username} is missing: bench/seed.ts creates it before the relay starts`);
    callers.set(`Bearer ${callerToken(i)}`, { id: user.id, username });
  }
  const app = express();
  app.disable('x-powered-by');
  // A host's token check, with its tokens in memory (as one-api caches them); no database round trip.
  const tokenAuth = (req: Request, res: Response, next: NextFunction): void => {
    const caller = callers.get(req.headers.authorization ?? '');
    if (caller) res.locals.user = caller;
    next();
  };
  app.post('/kling/callback', relay.callback);
  app.use('/kling', tokenAuth, relay.router);
  const server = await listen(app);
  send({ ready: true, url: urlOf(server) });
  return async () => {
    await close(server);
    if (settle) await relay.stop();
    relay.close();
    // Requests whose client already left may still be at the database: let them finish first.
    const pool = (db.client as { pool?: { numUsed(): number; numPendingAcquires(): number } }).pool;
    for (let waited = 0; pool && pool.numUsed() + pool.numPendingAcquires() > 0 && waited < 5_000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await db.destroy();
  };
}

async function runBare(sandboxUrl: string): Promise<() => Promise<void>> {
  const accounts = new AccountPool([{ id: 'bench', accessKey: BENCH_ACCOUNT.accessKey, secretKey: BENCH_ACCOUNT.secretKey, baseUrl: sandboxUrl }]);
  const client = new KlingClient({ accounts, timeoutMs: 30_000, logger: silentLogger });
  const account = accounts.pick();
  const app = express();
  app.disable('x-powered-by');
  app.use('/kling', express.json({ limit: '60mb' }), (req, res) => {
    const call = req.method === 'POST' ? client.post(account, req.url, req.body as object) : client.get(account, req.url);
    call.then(
      (reply) => res.status(reply.httpStatus).json(reply.envelope),
      (error: unknown) => {
        const status = error instanceof UpstreamError ? (error.httpStatus ?? 502) : 500;
        res.status(status).json({ code: error instanceof UpstreamError ? (error.klingCode ?? 5000) : 5000, message: (error as Error).message });
      },
    );
  });
  const server = await listen(app);
  send({ ready: true, url: urlOf(server) });
  return async () => {
    await close(server);
    client.close();
  };
}

async function main(): Promise<void> {
  const [role, sandboxUrl = '', database = '', settle, cap] = process.argv.slice(2);
  // The sandbox stays where the bench's own process runs (it inherits its CPUs).
  if (pinned && role !== 'sandbox') pinSelf('server');
  const relay = (): Promise<() => Promise<void>> => runRelay(sandboxUrl, database, settle === 'settle', cap === undefined ? undefined : Number(cap));
  const stop = role === 'sandbox' ? await runSandbox() : role === 'relay' ? await relay() : role === 'bare' ? await runBare(sandboxUrl) : undefined;
  if (!stop) throw new Error(`bench/servers.ts: unknown role "${String(role)}" (sandbox, relay, bare)`);
  process.on('message', (message: { cmd?: string }) => {
    if (message.cmd === 'peak-reset') {
      // The baseline is the live heap, not garbage left by earlier runs (run.ts passes --expose-gc).
      (globalThis as { gc?: () => void }).gc?.();
      resetPeak();
      send(memory());
    } else if (message.cmd === 'peak' || message.cmd === 'usage') {
      send(memory());
    } else if (message.cmd === 'stop') {
      // A normal exit, so that --cpu-prof writes its profile.
      stop().then(() => process.exit(0), () => process.exit(1));
    }
  });
  process.on('disconnect', () => process.exit(0));
}

main().catch((error: unknown) => {
  send({ error: (error as Error).stack ?? String(error) });
  process.exit(1);
});
