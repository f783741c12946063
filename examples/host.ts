/**
 * A production-shaped host (`npx tsx examples/host.ts`): what docs/guide.md describes, in one file.
 * The host's schema is one-api's (the fork with Kling's Video and Image tables): `users` with its
 * balance, `tokens`, `channels`, `logs`, `videos` and `images`, created here with the columns the relay
 * and one-api's readers use when they are absent. `profile: 'one-api'` writes them as one-api does
 * (status words, Kling's task object in `result`, the consume log at settle). It also serves
 * Prometheus metrics and the OpenAPI document, trusts one reverse proxy, and shuts down cleanly.
 *
 * Environment:
 *   DATABASE_URL        mysql://..., postgres://... or a SQLite file (default .demo/host.sqlite)
 *   PORT (3000), HOST (127.0.0.1)
 *   KLING_API_KEY, or KLING_ACCESS_KEY and KLING_SECRET_KEY   real Kling; without them the bundled sandbox answers
 *   KLING_CHANNEL_ID    the one-api channel (channels.id) of that Kling account (default 1)
 *   KLING_CALLBACK_URL  the public URL of /kling/callback (default http://HOST:PORT/kling/callback)
 *   KLING_CALLBACK_SECRET  at least 32 characters (default: a fixed development value)
 */
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import knex, { type Knex } from 'knex';
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { knexConfigFor } from '../lib/cli/migrate.js';
// In your app: from 'kling-relay'.
import { createKlingRelay, startKlingSandbox, type KlingRelayOptions } from '../lib/index.js';

const CHANNEL_ID = Number(process.env.KLING_CHANNEL_ID ?? 1);

/** Creates a table of one-api's when it is absent. */
async function ensureTable(db: Knex, name: string, build: (t: Knex.CreateTableBuilder) => void): Promise<boolean> {
  if (await db.schema.hasTable(name)) return false;
  await db.schema.createTable(name, build);
  return true;
}

/** one-api's tables, the columns the relay and one-api's own readers use (one-api's migrations create the rest). */
async function oneApiSchema(db: Knex): Promise<void> {
  if (await ensureTable(db, 'users', (t) => {
    t.increments('id');
    t.string('username', 191).unique();
    t.text('password').notNullable();
    t.integer('quota').defaultTo(0);
    t.integer('used_quota').defaultTo(0);
    t.integer('request_count').defaultTo(0);
  })) await db('users').insert({ username: 'alice', password: 'not-a-real-hash', quota: 5_000_000 });
  if (await ensureTable(db, 'tokens', (t) => {
    t.increments('id');
    t.integer('user_id');
    t.string('key', 48).unique();
    t.integer('status').defaultTo(1);
    t.text('name');
  })) await db('tokens').insert({ user_id: 1, key: 'alice-example-key', name: 'example' });
  if (await ensureTable(db, 'channels', (t) => {
    t.increments('id');
    t.bigInteger('type').defaultTo(0);
    t.string('name', 191);
    t.bigInteger('used_quota').defaultTo(0);
  })) await db('channels').insert({ id: CHANNEL_ID, type: 50, name: 'kling' });
  await ensureTable(db, 'logs', (t) => {
    t.increments('id');
    t.bigInteger('user_id');
    t.bigInteger('created_at');
    t.bigInteger('type');
    t.text('content');
    t.string('username', 191).defaultTo('');
    t.string('token_name', 191).defaultTo('');
    t.string('model_name', 191).defaultTo('');
    t.bigInteger('quota').defaultTo(0);
    t.bigInteger('channel_id');
    t.double('duration').defaultTo(0);
  });
  const task = (t: Knex.CreateTableBuilder): void => {
    t.bigIncrements('id');
    t.string('task_id', 200);
    t.bigInteger('created_at');
    t.bigInteger('updated_at');
    t.string('provider', 191);
    t.text('mode');
    t.string('username', 191);
    t.bigInteger('channel_id');
    t.bigInteger('user_id');
    t.string('model', 191);
    t.string('status', 191);
    t.text('fail_reason');
    t.text('store_url');
    t.bigInteger('quota');
    t.bigInteger('n');
    t.text('result');
  };
  await ensureTable(db, 'videos', (t) => {
    task(t);
    t.text('type');
    t.text('duration');
    t.string('video_id', 191);
  });
  await ensureTable(db, 'images', (t) => {
    task(t);
    t.text('image_id');
  });
}

/** The host's own token check, as one-api's: `Authorization: Bearer sk-<key>` -> res.locals.user. */
function tokenAuth(db: Knex) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const key = /^Bearer\s+sk-(\S+)$/i.exec(req.get('authorization') ?? '')?.[1];
    if (!key) {
      res.status(401).json({ code: 1000, message: 'missing token', request_id: '' });
      return;
    }
    db('tokens').join('users', 'users.id', 'tokens.user_id').where({ 'tokens.key': key, 'tokens.status': 1 }).first('users.id as id', 'users.username as username')
      .then((user: { id: number; username: string } | undefined) => {
        if (!user) res.status(401).json({ code: 1000, message: 'invalid token', request_id: '' });
        else {
          res.locals.user = user;
          next();
        }
      })
      .catch(next);
  };
}

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST || '127.0.0.1';
const databaseUrl = process.env.DATABASE_URL || '.demo/host.sqlite';
if (!/^[a-z]+:\/\//i.test(databaseUrl)) mkdirSync('.demo', { recursive: true });
const db = knex(knexConfigFor(databaseUrl));
await oneApiSchema(db);

const app = express();
// One reverse proxy (nginx, a load balancer) in front: req.ip is the client's, not the proxy's.
app.set('trust proxy', 1);
const server = app.listen(port, host);
await new Promise((resolve) => server.once('listening', resolve));
const base = `http://${host}:${(server.address() as AddressInfo).port}`;

/** The Kling account of the one-api channel CHANNEL_ID, from the environment; undefined without keys. */
function accountFromEnv(): NonNullable<KlingRelayOptions['accounts']>[number] | undefined {
  const { KLING_API_KEY: apiKey, KLING_ACCESS_KEY: accessKey, KLING_SECRET_KEY: secretKey, KLING_BASE_URL: baseUrl } = process.env;
  const account = { id: 'kling', channelId: CHANNEL_ID, ...(baseUrl ? { baseUrl } : {}) };
  if (apiKey) return { ...account, apiKey };
  if (accessKey && secretKey) return { ...account, accessKey, secretKey };
  return undefined;
}

const realAccount = accountFromEnv();
const sandbox = realAccount ? undefined : await startKlingSandbox({ schedule: { processingAfterMs: 2_000, finalAfterMs: 6_000 } });
const account = realAccount ?? { id: 'sandbox', apiKey: sandbox?.accounts[0]?.apiKeys?.[0] as string, baseUrl: sandbox?.url as string, channelId: CHANNEL_ID };

const relay = createKlingRelay({
  db,
  accounts: [account],
  callbackUrl: process.env.KLING_CALLBACK_URL || `${base}/kling/callback`,
  callbackSecret: process.env.KLING_CALLBACK_SECRET || 'development-only-secret-0123456789abcdef',
  pricing: new URL('./pricing.json', import.meta.url).pathname,
  identify: (_req, res) => res.locals.user as { id: number; username: string } | undefined,
  // one-api's own tables, written as one-api does; billing 'charge-on-success', its consume log at settle.
  profile: 'one-api',
  reconciler: { intervalMs: 5_000 },
});
await relay.migrate();

const metrics = new Registry();
collectDefaultMetrics({ register: metrics });
await relay.metrics(metrics);
relay.events.on('failed', (e) => console.warn(`task ${e.externalTaskId} of user ${e.userId} failed: ${e.reason}`));

app.post('/kling/callback', relay.callback); // before the token check: Kling has no user token
app.use('/kling', tokenAuth(db), relay.router);
app.get('/metrics', (_req, res, next) => {
  metrics.metrics().then((text) => res.type(metrics.contentType).send(text), next);
});
app.get('/healthz', (_req, res) => {
  res.json({ ok: true });
});
relay.start();
console.log(`host ready on ${base}: POST ${base}/kling/v1/videos/text2video with Authorization: Bearer sk-alice-example-key; metrics on ${base}/metrics`);

async function shutdown(): Promise<void> {
  server.close();
  await relay.stop();
  relay.close();
  await sandbox?.close();
  await db.destroy();
}
process.once('SIGINT', () => void shutdown());
process.once('SIGTERM', () => void shutdown());
