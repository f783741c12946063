/**
 * The demo host behind `npm start` and `kling-relay serve`: a small API-relay host app with the relay
 * mounted, written the way an integrator would write one. It keeps its data in SQLite in `dir`, seeds
 * one user with a balance and an API token (once; later starts reuse them), mounts the relay at /kling
 * behind a bearer-token check, and uses the bundled Kling sandbox as the upstream unless real Kling
 * keys are set. It lives in lib/ so that it runs from the installed package too.
 */
import express from 'express';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import knex from 'knex';
import type { Knex } from 'knex';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { createDefaultHostTables } from '../adapters/host-schema.js';
import { sqliteAfterCreate } from '../adapters/sqlite-tuning.js';
import { klingJwtAuth, type KlingKey } from './auth/kling-jwt.js';
import { createKlingRelay, type KlingRelay } from './index.js';
import { accountsFromEnv } from './options.js';
import { packageRoot } from './paths.js';
import { startKlingSandbox, type KlingSandbox } from './sandbox/index.js';
import type { KlingAccountInit } from './upstream/accounts.js';

const DEMO_USERNAME = 'demo';
/** 10 USD at the relay's default 500000 quota per USD: enough for dozens of 5-second videos. */
const DEMO_START_QUOTA = 5_000_000;
const QUOTA_PER_USD = 500_000;
/** Long enough to watch a task go submitted -> processing -> succeed by querying it with curl. */
const SANDBOX_SCHEDULE = { processingAfterMs: 3_000, finalAfterMs: 10_000 };
const SHUTDOWN_GRACE_MS = 5_000;

/** The body of the printed submit curl. */
const EXAMPLE_BODY = {
  model_name: 'kling-v1',
  prompt: 'A red panda sipping tea in a misty bamboo forest, cinematic lighting',
  mode: 'std',
  duration: '5',
  aspect_ratio: '16:9',
};

interface DemoUser {
  id: number;
  username: string;
}

function insertedId(value: unknown): number {
  // SQLite and MySQL answer [id]; PostgreSQL answers [{ id }] for insert(..., ['id']).
  return Number(typeof value === 'object' && value !== null ? (value as { id: unknown }).id : value);
}

/** The demo's own table: API tokens of the host's users (a real host already has one). */
async function createTokenTable(db: Knex): Promise<void> {
  if (await db.schema.hasTable('api_tokens')) return;
  await db.schema.createTable('api_tokens', (t) => {
    t.increments('id').primary();
    t.integer('user_id').notNullable().index();
    // Stored as is so that the demo can print it at every start. A production host stores a hash.
    t.string('token', 100).notNullable().unique();
    t.string('name', 100).notNullable().defaultTo('');
    t.bigInteger('created_at').notNullable().defaultTo(0);
  });
}

/** Creates the demo user and its token on the first start; later starts find and reuse them. */
/**
 * Kling-style keys of the host's users: a user's existing Kling client signs its JWTs with the secret
 * key and names the access key in `iss`. The secret is needed to check the signature, so it is stored
 * (a production host encrypts it at rest) and shown to the user once.
 */
async function createKlingKeyTable(db: Knex): Promise<void> {
  if (await db.schema.hasTable('kling_keys')) return;
  await db.schema.createTable('kling_keys', (t) => {
    t.increments('id').primary();
    t.integer('user_id').notNullable().index();
    t.string('access_key', 64).notNullable().unique();
    t.string('secret_key', 128).notNullable();
    t.bigInteger('created_at').notNullable().defaultTo(0);
  });
}

/** The klingJwtAuth lookup: access key -> its secret and the user who owns it. */
function klingKeyLookup(db: Knex): (accessKey: string) => Promise<KlingKey | null> {
  return async (accessKey) => {
    const row = (await db('kling_keys')
      .join('users', 'users.id', 'kling_keys.user_id')
      .where('kling_keys.access_key', accessKey)
      .first('kling_keys.secret_key as secretKey', 'users.id as id', 'users.username as username')) as { secretKey: string; id: number; username: string } | undefined;
    return row ? { secretKey: row.secretKey, user: { id: row.id, username: row.username } } : null;
  };
}

/** Creates the demo user, its token and its Kling keys on the first start; later starts find and reuse them. */
async function seedDemoUser(db: Knex): Promise<{ user: DemoUser; token: string; keys: { accessKey: string; secretKey: string } }> {
  return db.transaction(async (trx) => {
    let user = (await trx('users').where({ username: DEMO_USERNAME }).first('id', 'username')) as DemoUser | undefined;
    if (!user) {
      const [id] = await trx('users').insert({ username: DEMO_USERNAME, quota: DEMO_START_QUOTA, used_quota: 0 }, ['id']);
      user = { id: insertedId(id), username: DEMO_USERNAME };
    }
    let row = (await trx('api_tokens').where({ user_id: user.id }).first('token')) as { token: string } | undefined;
    if (!row) {
      row = { token: `sk-demo-${randomBytes(24).toString('hex')}` };
      await trx('api_tokens').insert({ user_id: user.id, token: row.token, name: 'demo', created_at: Math.floor(Date.now() / 1000) });
    }
    let keys = (await trx('kling_keys').where({ user_id: user.id }).first('access_key as accessKey', 'secret_key as secretKey')) as { accessKey: string; secretKey: string } | undefined;
    if (!keys) {
      keys = { accessKey: `ak-demo-${randomBytes(12).toString('hex')}`, secretKey: randomBytes(32).toString('hex') };
      await trx('kling_keys').insert({ user_id: user.id, access_key: keys.accessKey, secret_key: keys.secretKey, created_at: Math.floor(Date.now() / 1000) });
    }
    return { user, token: row.token, keys };
  });
}

async function balanceOf(db: Knex, userId: number): Promise<number> {
  const row = (await db('users').where({ id: userId }).first('quota')) as { quota: number | string } | undefined;
  return Number(row?.quota ?? 0);
}

/**
 * The callback secret must survive restarts: a task submitted before a restart is called back with a
 * token made from it. So it is generated once and kept next to the database.
 */
function callbackSecret(dir: string): string {
  if (process.env.KLING_CALLBACK_SECRET) return process.env.KLING_CALLBACK_SECRET;
  const file = join(dir, 'callback-secret');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secret = randomBytes(32).toString('hex');
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

/** An error in Kling's envelope, the shape every answer under /kling has. */
function klingError(res: Response, status: number, code: number, message: string): void {
  res.status(status).json({ code, message, request_id: randomUUID() });
}

/**
 * The host's token check: `Authorization: Bearer <token>` -> res.locals.user, which is where the
 * relay's default `identify` looks for the caller.
 */
function tokenAuth(db: Knex): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '');
    if (!match) {
      klingError(res, 401, 1000, 'missing Authorization: Bearer <token>');
      return;
    }
    db('api_tokens')
      .join('users', 'users.id', 'api_tokens.user_id')
      .where('api_tokens.token', match[1])
      .first('users.id as id', 'users.username as username')
      .then((user: DemoUser | undefined) => {
        if (!user) {
          klingError(res, 401, 1000, 'invalid token');
          return;
        }
        res.locals.user = { id: user.id, username: user.username };
        next();
      })
      .catch((error: unknown) => {
        console.error('token check failed:', (error as Error).message);
        klingError(res, 503, 5001, 'service unavailable');
      });
  };
}

/** How many of the user's tasks GET /me lists, newest first. */
const ME_RECENT_TASKS = 10;

/**
 * GET /me: the caller's balance and recent tasks, so that a demo user sees what a submit held and
 * what a settle charged without opening the SQLite file. It reads the relay's own task table, which
 * names each task by the id Kling gave it (the `task_id` a submit answers).
 */
function meHandler(db: Knex): RequestHandler {
  return (_req: Request, res: Response) => {
    const user = res.locals.user as DemoUser;
    Promise.all([
      balanceOf(db, user.id),
      db('kling_relay_tasks')
        .where({ user_id: String(user.id) })
        .orderBy('id', 'desc')
        .limit(ME_RECENT_TASKS)
        .select('kling_task_id', 'external_task_id', 'endpoint', 'model', 'state', 'hold_quota', 'charge_quota', 'created_at') as Promise<TaskRow[]>,
    ])
      .then(([quota, tasks]) => {
        res.json({
          code: 0,
          message: 'SUCCEED',
          request_id: randomUUID(),
          data: { user: { id: user.id, username: user.username }, quota, quota_usd: (quota / QUOTA_PER_USD).toFixed(2), tasks: tasks.map(taskSummary) },
        });
      })
      .catch((error: unknown) => {
        console.error('GET /me failed:', (error as Error).message);
        klingError(res, 503, 5001, 'service unavailable');
      });
  };
}

interface TaskRow {
  kling_task_id: string | null;
  external_task_id: string;
  endpoint: string;
  model: string;
  state: string;
  hold_quota: number | string;
  charge_quota: number | string | null;
  created_at: number | string;
}

/** One task as GET /me lists it; `task_status` as Kling names it (a task not yet sent is `submitted`). */
function taskSummary(row: TaskRow): Record<string, unknown> {
  return {
    task_id: row.kling_task_id,
    external_task_id: row.external_task_id,
    endpoint: row.endpoint,
    model: row.model,
    task_status: row.state === 'pending' || row.state === 'queued' ? 'submitted' : row.state,
    hold_quota: Number(row.hold_quota),
    charge_quota: row.charge_quota === null ? null : Number(row.charge_quota),
    created_at: Number(row.created_at),
  };
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolvePromise(server.address() as AddressInfo);
    });
  });
}

/** Closes the server: no new connections, in-flight requests get a grace period, then are cut. */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolvePromise) => {
    const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
    server.close(() => {
      clearTimeout(force);
      resolvePromise();
    });
    server.closeIdleConnections();
  });
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export interface DemoHostOptions {
  /** Default 3000; 0 picks a free port. */
  port?: number;
  /** Default '127.0.0.1'. */
  host?: string;
  /** Where the SQLite file and the callback secret live. */
  dir: string;
  /** Pricing rules file. Default: the package's examples/pricing.json. */
  pricing?: string;
}

/**
 * Runs the demo host until SIGINT/SIGTERM: `npm start` (examples/demo.ts) and `kling-relay serve`.
 * Environment: KLING_API_KEY, or KLING_ACCESS_KEY with KLING_SECRET_KEY, and KLING_BASE_URL (real
 * Kling instead of the sandbox),
 * KLING_CALLBACK_URL, KLING_CALLBACK_SECRET, KLING_SANDBOX_PORT.
 */
export async function runDemoHost(options: DemoHostOptions): Promise<void> {
  const port = options.port ?? 3000;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`the port must be a number from 0 to 65535, got ${JSON.stringify(options.port)}`);
  const host = options.host || '127.0.0.1';
  const dir = resolve(options.dir);
  const pricingFile = options.pricing ? resolve(options.pricing) : join(packageRoot(), 'examples', 'pricing.json');
  mkdirSync(dir, { recursive: true });
  const dbFile = join(dir, 'demo.sqlite');

  // The host's database. The relay works on the host's knex instance: mysql2, pg or better-sqlite3.
  // WAL, synchronous=NORMAL and kept prepared statements: what docs/performance.md recommends for SQLite hosts.
  const db = knex({ client: 'better-sqlite3', connection: { filename: dbFile }, useNullAsDefault: true, pool: { afterCreate: sqliteAfterCreate() } });
  let sandbox: KlingSandbox | undefined;
  let relay: KlingRelay | undefined;
  let server: Server | undefined;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // Stop taking requests first; in-flight submits still need the upstream and the database.
      if (server) await closeServer(server);
      if (relay) {
        await relay.stop();
        relay.close();
      }
      await sandbox?.close();
      await db.destroy();
    })();
    return stopping;
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // A second Ctrl+C: the user does not want to wait for the grace period.
      process.exit(130);
    }
    console.log(`\n${signal}: shutting down`);
    // If something keeps the event loop alive after the cleanup, do not hang forever.
    setTimeout(() => {
      console.error('shutdown did not finish in time');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS + 5_000).unref();
    stop().catch((error: unknown) => {
      console.error('shutdown failed:', error);
      process.exitCode = 1;
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    // The host's own tables. A real host already has them; the relay never creates or alters them.
    await createDefaultHostTables(db);
    await createTokenTable(db);
    await createKlingKeyTable(db);
    const { user, token, keys: userKeys } = await seedDemoUser(db);

    // Listen before creating the relay: with PORT=0 the callback URL is known only once bound. The
    // relay's routes are added right after, before anything is printed.
    const app = express();
    app.disable('x-powered-by');
    server = createServer(app);
    const address = await listen(server, port, host);
    const shownHost = ['0.0.0.0', '::', ''].includes(address.address) ? '127.0.0.1' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const baseUrl = `http://${shownHost}:${address.port}`;

    // Real Kling when a key is set, read as createKlingRelay reads it; otherwise the bundled sandbox,
    // which behaves like Kling (key checks, task progress, callbacks) and answers every endpoint.
    const fromEnv = accountsFromEnv(process.env)?.[0];
    const realKling = fromEnv !== undefined;
    let account: KlingAccountInit;
    if (fromEnv) {
      // Tasks record their account id, so it stays what earlier runs of the demo stored.
      account = { ...fromEnv, id: 'kling' };
    } else {
      sandbox = await startKlingSandbox({ port: Number(process.env.KLING_SANDBOX_PORT ?? 0), schedule: SANDBOX_SCHEDULE });
      const keys = sandbox.accounts[0];
      if (!keys) throw new Error('the Kling sandbox has no account');
      account = { id: 'sandbox', accessKey: keys.accessKey, secretKey: keys.secretKey, baseUrl: sandbox.url };
    }

    relay = createKlingRelay({
      db,
      accounts: [account],
      // Kling calls this URL when a task changes; it must reach the host's /kling/callback route.
      callbackUrl: process.env.KLING_CALLBACK_URL || `${baseUrl}/kling/callback`,
      callbackSecret: callbackSecret(dir),
      pricing: pricingFile,
      // What the token check below put in res.locals.user (this is also the relay's default).
      identify: (_req, res) => res.locals.user as DemoUser | undefined,
      // The sandbox keeps its tasks in memory: a task still running when the demo stops is gone after a
      // restart, so give up on it (and refund it) after minutes rather than Kling's day.
      ...(sandbox ? { reconciler: { intervalMs: 5_000, taskTimeoutMs: 5 * 60_000 } } : {}),
    });
    await relay.migrate();

    // Kling's callbacks carry their own per-task token, not a user's: this route goes before the
    // token check. No body parser in front of the relay either: it reads request bodies itself.
    app.post('/kling/callback', relay.callback);
    // A Bearer JWT is checked as Kling checks it (codes 1001-1004); any other token goes to tokenAuth.
    const auth = klingJwtAuth({ lookup: klingKeyLookup(db), fallback: tokenAuth(db) });
    app.use('/kling', auth, relay.router);
    app.get('/me', auth, meHandler(db));
    // The background reconciler settles tasks whose callback never came.
    relay.start();

    const quota = await balanceOf(db, user.id);
    const authHeader = `Authorization: Bearer ${token}`;
    const submitUrl = `${baseUrl}/kling/v1/videos/text2video`;
    const upstream = sandbox
      ? `Kling sandbox at ${sandbox.url} (tasks succeed about ${SANDBOX_SCHEDULE.finalAfterMs / 1000} s after submit)`
      : `Kling at ${account.baseUrl ?? 'https://api-singapore.klingai.com'}`;
    const lines = [
      `kling-relay demo ready on ${baseUrl}`,
      '',
      `  relay     ${baseUrl}/kling`,
      `  upstream  ${upstream}`,
      `  database  ${dbFile}`,
      `  user      ${user.username} (id ${user.id}), quota ${quota} (${(quota / QUOTA_PER_USD).toFixed(2)} USD at ${QUOTA_PER_USD} per USD)`,
      `  token     ${token}`,
      `  kling AK  ${userKeys.accessKey}`,
      `  kling SK  ${userKeys.secretKey}`,
      '',
      'Submit a text-to-video task:',
      '',
      `  curl -sS -X POST ${submitUrl} \\`,
      `    -H ${shellQuote(authHeader)} \\`,
      `    -H 'Content-Type: application/json' \\`,
      `    -d ${shellQuote(JSON.stringify(EXAMPLE_BODY))}`,
      '',
      'Query it: replace TASK_ID with data.task_id from the submit answer:',
      '',
      `  curl -sS ${submitUrl}/TASK_ID \\`,
      `    -H ${shellQuote(authHeader)}`,
      '',
      'Your balance and recent tasks (what a submit held, what a finished task was charged):',
      '',
      `  curl -sS ${baseUrl}/me \\`,
      `    -H ${shellQuote(authHeader)}`,
      '',
      `An existing Kling client works too: set its base URL to ${baseUrl}/kling and its keys to kling AK / SK.`,
      '',
      ...(realKling && !process.env.KLING_CALLBACK_URL
        ? ['Kling cannot call back to this address: set KLING_CALLBACK_URL to a public URL of /kling/callback.', 'Until then the reconciler settles tasks by polling Kling.', '']
        : []),
      `Ctrl+C stops the demo. Delete ${dir} to start over with a fresh balance and token.`,
    ];
    // One write, so that a reader waiting for the last line sees the whole block.
    process.stdout.write(`${lines.join('\n')}\n`);
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
