/**
 * A production-shaped host (`npx tsx examples/host.ts`): what docs/guide.md describes, in one file.
 * Unlike the demo, the host's schema is "existing" and not the relay's defaults: a one-api / new-api
 * style `users` table with its own balance columns and `tokens` table, and task tables with other
 * column names, all reached through the relay's column mapping. It also serves Prometheus metrics
 * and the OpenAPI document, trusts one reverse proxy, and shuts down cleanly.
 *
 * Environment:
 *   DATABASE_URL        mysql://..., postgres://... or a SQLite file (default .demo/host.sqlite)
 *   PORT (3000), HOST (127.0.0.1)
 *   KLING_API_KEY, or KLING_ACCESS_KEY and KLING_SECRET_KEY   real Kling; without them the bundled sandbox answers
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

/** The "existing" schema: the shape of a one-api / new-api host, created here only when absent. */
async function existingSchema(db: Knex): Promise<void> {
  if (!(await db.schema.hasTable('users'))) {
    await db.schema.createTable('users', (t) => {
      t.increments('id');
      t.string('username', 64).notNullable();
      t.bigInteger('remain_quota').notNullable().defaultTo(0);
      t.bigInteger('used_quota').notNullable().defaultTo(0);
    });
    await db('users').insert({ username: 'alice', remain_quota: 5_000_000 });
  }
  if (!(await db.schema.hasTable('tokens'))) {
    await db.schema.createTable('tokens', (t) => {
      t.increments('id');
      t.integer('user_id').notNullable();
      t.string('key', 64).notNullable().unique();
    });
    await db('tokens').insert({ user_id: 1, key: 'sk-alice-example' });
  }
  for (const name of ['kling_video_tasks', 'kling_image_tasks']) {
    if (await db.schema.hasTable(name)) continue;
    await db.schema.createTable(name, (t) => {
      t.increments('id');
      t.string('platform_task_id', 191).notNullable().defaultTo('').index();
      t.string('user_id', 64).notNullable();
      t.string('channel', 64).notNullable().defaultTo('');
      t.string('model', 64).notNullable().defaultTo('');
      t.string('action', 64).notNullable().defaultTo('');
      t.string('status', 32).notNullable().defaultTo('');
      t.bigInteger('quota').notNullable().defaultTo(0);
      t.text('data');
      t.text('fail_reason');
      t.bigInteger('submit_time').notNullable().defaultTo(0);
      t.bigInteger('update_time').notNullable().defaultTo(0);
    });
  }
}

/** The host's own token check: `Authorization: Bearer <key>` -> res.locals.user. */
function tokenAuth(db: Knex) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const key = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1];
    if (!key) {
      res.status(401).json({ code: 1000, message: 'missing token', request_id: '' });
      return;
    }
    db('tokens').join('users', 'users.id', 'tokens.user_id').where('tokens.key', key).first('users.id as id', 'users.username as username')
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
await existingSchema(db);

const app = express();
// One reverse proxy (nginx, a load balancer) in front: req.ip is the client's, not the proxy's.
app.set('trust proxy', 1);
const server = app.listen(port, host);
await new Promise((resolve) => server.once('listening', resolve));
const base = `http://${host}:${(server.address() as AddressInfo).port}`;

const realKling = Boolean(process.env.KLING_API_KEY || process.env.KLING_ACCESS_KEY);
const sandbox = realKling ? undefined : await startKlingSandbox({ schedule: { processingAfterMs: 2_000, finalAfterMs: 6_000 } });
const accounts: KlingRelayOptions['accounts'] = sandbox
  ? [{ id: 'sandbox', apiKey: sandbox.accounts[0]?.apiKeys?.[0] as string, baseUrl: sandbox.url }]
  : undefined; // from KLING_API_KEY, or KLING_ACCESS_KEY / KLING_SECRET_KEY

const relay = createKlingRelay({
  db,
  ...(accounts ? { accounts } : {}),
  callbackUrl: process.env.KLING_CALLBACK_URL || `${base}/kling/callback`,
  callbackSecret: process.env.KLING_CALLBACK_SECRET || 'development-only-secret-0123456789abcdef',
  pricing: new URL('./pricing.json', import.meta.url).pathname,
  identify: (_req, res) => res.locals.user as { id: number; username: string } | undefined,
  // The existing schema, mapped column by column; `false` where the host has no such column.
  tables: {
    video: { name: 'kling_video_tasks', columns: { task_id: 'platform_task_id', channel_id: 'channel', type: 'action', result: 'data', created_at: 'submit_time', updated_at: 'update_time', username: false, provider: false, mode: false, duration: false } },
    image: { name: 'kling_image_tasks', columns: { task_id: 'platform_task_id', channel_id: 'channel', type: 'action', result: 'data', created_at: 'submit_time', updated_at: 'update_time', username: false, provider: false, mode: false, duration: false } },
  },
  quota: { table: 'users', idColumn: 'id', quotaColumn: 'remain_quota', usedColumn: 'used_quota' },
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
console.log(`host ready on ${base}: POST ${base}/kling/v1/videos/text2video with Authorization: Bearer sk-alice-example; metrics on ${base}/metrics`);

async function shutdown(): Promise<void> {
  server.close();
  await relay.stop();
  relay.close();
  await sandbox?.close();
  await db.destroy();
}
process.once('SIGINT', () => void shutdown());
process.once('SIGTERM', () => void shutdown());
