import { expect } from 'chai';
import type { Knex } from 'knex';
import { createDefaultHostTables } from '../../adapters/host-schema.js';
import { HostTable } from '../../adapters/host-table.js';
import { KnexQuotaStore } from '../../adapters/quota-store.js';
import { RelayStore } from '../../adapters/relay-store.js';
import { DirectSqlite } from '../../adapters/sqlite-direct.js';
import type { Billing, NewHostRow, NewRelayTask, RelayTask } from '../../adapters/types.js';
import { ClientNotices } from '../../lib/callbacks/notice.js';
import { RelayHttpError } from '../../lib/errors.js';
import { silentLogger } from '../../lib/logger.js';
import { loadRegistry } from '../../lib/registry/load.js';
import { KnexTaskStorage } from '../../lib/task/knex-storage.js';
import { accept, checkAgainAt, dequeue, finish, hold, markChecked, progress, reassign, requeue, type TaskLifeDeps } from '../../lib/task/life.js';
import { SqliteTaskStorage } from '../../lib/task/sqlite-storage.js';
import { ServerTaskStorage } from '../../lib/task/server-storage.js';
import { MysqlDirect } from '../../adapters/mysql-direct.js';
import { PgDirect } from '../../adapters/pg-direct.js';
import type { TaskStorage, TaskStorageParts } from '../../lib/task/storage.js';
import { testDatabases } from '../support/databases.js';
import { refuseHostStatus } from '../support/host-triggers.js';

/**
 * Every task storage, each run on the same script against fresh tables: the snapshots of what they
 * leave (host rows, relay rows, ledger, balances, outbox) must be the same. A new storage is one line
 * here; `make` answers undefined on a database the storage does not serve.
 */
const STORAGES: { name: string; make(parts: TaskStorageParts): TaskStorage | undefined }[] = [
  { name: 'knex', make: (parts) => new KnexTaskStorage(parts) },
  {
    name: 'sqlite-direct',
    make: (parts) => {
      const direct = DirectSqlite.for(parts.db);
      return direct && new SqliteTaskStorage(parts, direct);
    },
  },
  {
    name: 'server-direct',
    make: (parts) => {
      const direct = MysqlDirect.for(parts.db, parts.store) ?? PgDirect.for(parts.db, parts.store);
      return direct && new ServerTaskStorage(parts, direct);
    },
  },
];

const QPU = 500_000;
const TABLES = ['kling_relay_ledger', 'kling_relay_tasks', 'kling_relay_resources', 'kling_relay_outbox', 'videos', 'images', 'users'];
const RICH = 1;
const POOR = 2;
const LATER = 3;
const HOOK = 'https://caller.example.com/hook';
const FIVE_SECONDS = { videos: [{ id: 'v-1', url: 'https://cdn.example.com/v-1.mp4', duration: '5.0' }] };
const THREE_SECONDS = { videos: [{ id: 'v-2', url: 'https://cdn.example.com/v-2.mp4', duration: '3.2' }] };

interface Order {
  label: string;
  userId: number;
  amount: number;
  billing?: Billing;
  callbackUrl?: string;
  pricing?: { type: string; unit: number };
  /** Recorded waiting for a free slot, with this body. */
  queued?: Record<string, unknown>;
}

function plan(order: Order, now: number) {
  const userId = String(order.userId);
  const row: NewHostRow = {
    task_id: '', user_id: userId, username: `user-${userId}`, channel_id: 'main', model: 'kling-v2-1', provider: 'kling', type: 'text2video',
    status: '', quota: order.amount, mode: 'std', duration: 5, result: '', fail_reason: '', created_at: 0, updated_at: 0,
  };
  const externalId = { before: `ours-${order.label}-`, after: `-${Math.random().toString(36).slice(2)}` };
  const task = (hostRowId: string): NewRelayTask => ({
    external_task_id: `${externalId.before}${hostRowId}${externalId.after}`, client_task_id: order.label, request_hash: null, kling_task_id: null,
    account_id: 'main', endpoint: '/v1/videos/text2video', client_endpoint: null, request_type: 'text2video', table_kind: 'video', host_row_id: hostRowId, user_id: userId,
    state: order.queued ? 'queued' : 'pending', billing: order.billing ?? 'hold', hold_quota: order.amount, charge_quota: null, model: 'kling-v2-1', slots: 1,
    pricing: JSON.stringify(order.pricing ?? { type: 'per_request', unit: order.amount / QPU }), status_msg: null, result: null, deductions: null,
    kling_created_at: null, kling_updated_at: null, client_callback_url: order.callbackUrl ?? null, queued_body: order.queued ? JSON.stringify(order.queued) : null, lease_owner: null, lease_until: null,
    next_check_at: now + 60_000, check_count: 0, checked_at: null, created_at: now, updated_at: now,
  });
  return { table: 'video' as const, userId, billing: order.billing ?? 'hold', amount: order.amount, row, task, externalId, now };
}

/** Kling's answer to a create, its times fixed so that notices do not carry the clock. */
const answer = (klingTaskId: string, status: string) => ({ klingTaskId, status, createdAt: 1_700_000_000_000, updatedAt: 1_700_000_001_000 });

/** The script every storage runs; what each step answered, in order. */
async function script(deps: TaskLifeDeps): Promise<unknown[]> {
  const seen: unknown[] = [];
  const place = async (order: Order): Promise<RelayTask> => hold(deps, plan(order, Date.now()));
  const refusal = async (order: Order): Promise<string> => {
    const error = await place(order).then(() => undefined, (e: unknown) => e);
    return error instanceof RelayHttpError ? `${error.status}/${error.klingCode}` : `not refused: ${String(error)}`;
  };

  // A hold that succeeds, one refused for the balance; accept, forward, backward (refused), succeed, duplicate.
  const a = await place({ label: 'A', userId: RICH, amount: 250_000 });
  seen.push(await refusal({ label: 'short', userId: POOR, amount: 250_000 }));
  await accept(deps, a, answer('k-A', 'submitted'), 60_000);
  seen.push(await progress(deps, a, 'processing', 'k-A', 1_700_000_002_000));
  seen.push(await progress(deps, a, 'submitted', 'k-A', 1_700_000_003_000));
  seen.push(await finish(deps, a.id, { status: 'succeed', result: FIVE_SECONDS, klingUpdatedAt: 1_700_000_004_000 }));
  seen.push(await finish(deps, a.id, { status: 'succeed', result: FIVE_SECONDS, klingUpdatedAt: 1_700_000_005_000 }));

  // With a callback URL: each status change writes its notice; a failure refunds.
  const b = await place({ label: 'B', userId: RICH, amount: 100_000, callbackUrl: HOOK });
  await accept(deps, b, answer('k-B', 'processing'), 60_000);
  seen.push(await finish(deps, b.id, { status: 'failed', reason: 'content refused', klingUpdatedAt: 1_700_000_006_000 }));

  // A callback moved the task on before Kling's answer to the create: the answer brings the id only.
  for (const [label, callbackUrl] of [['C', HOOK], ['D', undefined]] as const) {
    const task = await place({ label, userId: RICH, amount: 50_000, ...(callbackUrl ? { callbackUrl } : {}) });
    seen.push(await progress(deps, task, 'processing', undefined, 1_700_000_007_000));
    await accept(deps, task, answer(`k-${label}`, 'submitted'), 60_000);
  }

  // A task whose create was never sent: refunded from pending; one of unknown outcome, checked again later.
  const e = await place({ label: 'E', userId: RICH, amount: 40_000 });
  seen.push(await finish(deps, e.id, { status: 'failed', reason: 'submit failed: bad gateway' }, ['pending']));
  const f = await place({ label: 'F', userId: RICH, amount: 30_000 });
  seen.push(await checkAgainAt(deps, f.id, Date.now() + 5_000));
  seen.push(await markChecked(deps, f.id, 2));

  // Per-second pricing charges what was delivered: 3.2 s of a 5 s hold.
  const g = await place({ label: 'G', userId: RICH, amount: 250_000, pricing: { type: 'per_second', unit: 0.1 } });
  await accept(deps, g, answer('k-G', 'submitted'), 60_000);
  seen.push(await finish(deps, g.id, { status: 'succeed', result: THREE_SECONDS }));

  // Charge-on-success: nothing taken at submit, the charge taken at the end; the estimates in flight count.
  const h = await place({ label: 'H', userId: LATER, amount: 300_000, billing: 'charge-on-success' });
  seen.push(await refusal({ label: 'too-much', userId: LATER, amount: 300_000, billing: 'charge-on-success' }));
  await accept(deps, h, answer('k-H', 'submitted'), 60_000);
  seen.push(await finish(deps, h.id, { status: 'succeed', result: FIVE_SECONDS }));

  // A create refused before Kling accepted anything moves to another account; once accepted it stays.
  const i = await place({ label: 'I', userId: RICH, amount: 20_000 });
  seen.push(await reassign(deps, i, 'spare'));
  await accept(deps, { ...i, account_id: 'spare' }, answer('k-I', 'submitted'), 60_000);
  seen.push(await reassign(deps, i, 'main'));
  seen.push(await finish(deps, i.id, { status: 'failed', reason: 'refused' }));

  // Queued: held with its body; out of the queue once (a second dispatcher loses), back in after every
  // account refused it, out again on another account, accepted (its notice written), settled.
  const j = await place({ label: 'J', userId: RICH, amount: 10_000, callbackUrl: HOOK, queued: { prompt: 'a kite' } });
  seen.push(await dequeue(deps, j, 'main', 60_000));
  seen.push(await dequeue(deps, j, 'spare', 60_000));
  seen.push(await requeue(deps, { ...j, account_id: 'main' }));
  seen.push(await dequeue(deps, j, 'spare', 60_000));
  await accept(deps, { ...j, account_id: 'spare' }, answer('k-J', 'submitted'), 60_000);
  seen.push(await requeue(deps, { ...j, account_id: 'spare' }));
  seen.push(await finish(deps, j.id, { status: 'succeed', result: FIVE_SECONDS }));
  // Queued too long: refunded from the queue, never sent; charge-on-success counts a queued estimate in flight.
  const k = await place({ label: 'K', userId: RICH, amount: 15_000, queued: { prompt: 'waits' } });
  seen.push(await finish(deps, k.id, { status: 'failed', reason: 'no Kling slot came free' }, ['queued']));
  await place({ label: 'L', userId: LATER, amount: 150_000, billing: 'charge-on-success', queued: { prompt: 'later' } });
  seen.push(await refusal({ label: 'over-queued', userId: LATER, amount: 100_000, billing: 'charge-on-success' }));
  return seen;
}

/** Columns that carry ids the database assigned or random ids: left out of a snapshot. */
const IDS = new Set(['id', 'host_row_id', 'external_task_id', 'notice_id']);
/** Columns that carry the clock: a snapshot says only whether they are set. */
const TIMES = new Set(['created_at', 'updated_at', 'next_check_at', 'checked_at', 'next_attempt_at', 'kling_created_at']);

/** A row without ids and with times as set/null; numbers as numbers, whatever the driver answers. */
function stable(row: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const [column, value] of Object.entries(row)) {
    if (IDS.has(column)) continue;
    if (TIMES.has(column)) kept[column] = value === null ? null : 'set';
    else if (column === 'body' && typeof value === 'string') kept.body = stable(JSON.parse(value) as Record<string, unknown>);
    else kept[column] = typeof value === 'bigint' || (typeof value === 'string' && /^-?\d+$/.test(value)) ? Number(value) : value;
  }
  return kept;
}

/** Everything the script left, in insertion order, without ids and times; ledger and outbox rows name their task by its label. */
async function snapshot(db: Knex): Promise<Record<string, Record<string, unknown>[]>> {
  const tasks = (await db('kling_relay_tasks').select('*').orderBy('id')) as Record<string, unknown>[];
  const labels = new Map(tasks.map((t) => [Number(t.id), String(t.client_task_id)]));
  const rows = async (table: string): Promise<Record<string, unknown>[]> => (await db(table).select('*').orderBy('id')) as Record<string, unknown>[];
  const ofTask = ({ task_id: taskId, ...row }: Record<string, unknown>): Record<string, unknown> => ({ task: labels.get(Number(taskId)), ...stable(row) });
  return {
    tasks: tasks.map(stable),
    videos: (await rows('videos')).map(stable),
    ledger: (await rows('kling_relay_ledger')).map(ofTask),
    outbox: (await rows('kling_relay_outbox')).map(ofTask),
    users: (await rows('users')).map(stable),
  };
}

for (const database of testDatabases()) {
  describe(`task storages on ${database.name}: the same script leaves the same rows`, function () {
    this.timeout(60_000);
    let db: Knex;

    beforeEach(() => {
      db = database.connect();
    });
    afterEach(async () => {
      await db.destroy();
    });

    async function freshTables(): Promise<TaskStorageParts> {
      for (const table of TABLES) await db.schema.dropTableIfExists(table);
      await createDefaultHostTables(db);
      const store = new RelayStore();
      await store.migrate(db);
      await db('users').insert([
        { id: RICH, username: 'rich', quota: 2_000_000, used_quota: 0 },
        { id: POOR, username: 'poor', quota: 100_000, used_quota: 0 },
        { id: LATER, username: 'later', quota: 500_000, used_quota: 0 },
      ]);
      const hosts = { video: new HostTable({ name: 'videos' }, 'video'), image: new HostTable({ name: 'images' }, 'image') };
      return { db, store, hosts, quota: new KnexQuotaStore(), notices: new ClientNotices(store.outbox, loadRegistry(undefined)) };
    }

    it('every storage answers the script as expected and leaves the same host rows, relay rows, ledger, balances and outbox', async () => {
      const results: { name: string; seen: unknown[]; rows: Record<string, Record<string, unknown>[]> }[] = [];
      for (const candidate of STORAGES) {
        const parts = await freshTables();
        const storage = candidate.make(parts);
        if (!storage) continue;
        try {
          const seen = await script({ storage, db, store: parts.store, quotaPerUnit: QPU, logger: silentLogger });
          results.push({ name: candidate.name, seen, rows: await snapshot(db) });
        } finally {
          storage.close?.();
        }
      }
      // Each database runs the generic storage and its own direct one.
      expect(results.map((r) => r.name)).to.deep.equal(['knex', database.name === 'sqlite' ? 'sqlite-direct' : 'server-direct']);
      const [first, ...others] = results;
      // hold refused; forward, backward refused; settled, duplicate; B refunded; C and D moved by a
      // "callback"; E refunded; F rescheduled and checked; G settled; H's second estimate refused, H settled.
      // I moved to another account while pending, not once accepted, then refunded. J dequeued once,
      // requeued, dequeued, not requeued once accepted, settled; K refunded from the queue; L's queued
      // estimate counted in flight.
      expect(first?.seen).to.deep.equal(['402/1102', true, false, true, false, true, true, true, true, true, true, true, '402/1102', true, true, false, true, true, false, true, true, false, true, true, '402/1102']);
      const queued = first?.rows.tasks?.find((t) => t.client_task_id === 'J');
      expect([queued?.state, queued?.account_id, queued?.queued_body, first?.rows.videos?.find((v) => v.task_id === 'k-J')?.channel_id]).to.deep.equal(['succeed', 'spare', '{"prompt":"a kite"}', 'spare']);
      expect(first?.rows.tasks?.filter((t) => t.state === 'queued').map((t) => t.client_task_id)).to.deep.equal(['L']);
      const moved = first?.rows.tasks?.find((t) => t.client_task_id === 'I');
      expect([moved?.account_id, first?.rows.videos?.find((v) => v.task_id === 'k-I')?.channel_id]).to.deep.equal(['spare', 'spare']);
      const balances = first?.rows.users?.map((u) => [u.quota, u.used_quota]);
      // RICH: A 250000, C and D 50000 each held, F 30000 held, G charged 160000 (3.2 s at 0.1 USD), J 10000; B, E and K refunded.
      // LATER: H charged 300000 at the end, L in flight. POOR: untouched.
      expect(balances).to.deep.equal([[2_000_000 - 250_000 - 100_000 - 30_000 - 160_000 - 10_000, 250_000 + 160_000 + 10_000], [100_000, 0], [200_000, 300_000]]);
      for (const other of others) {
        expect(other.seen, `${other.name}: answers`).to.deep.equal(first?.seen);
        for (const part of Object.keys(first?.rows ?? {})) expect(other.rows[part], `${other.name}: ${part}`).to.deep.equal(first?.rows[part]);
      }
    });

    it("writes Kling's answer to a create in one transaction in every storage: a host row that refuses it leaves the task pending, without Kling's id", async () => {
      let tried = 0;
      for (const candidate of STORAGES) {
        const parts = await freshTables();
        const storage = candidate.make(parts);
        if (!storage) continue;
        tried++;
        after(() => storage.close?.());
        const deps = { storage, db, store: parts.store, quotaPerUnit: QPU, logger: silentLogger };
        const tasks = [await hold(deps, plan({ label: 'plain', userId: RICH, amount: 1_000 }, Date.now())), await hold(deps, plan({ label: 'hooked', userId: RICH, amount: 1_000, callbackUrl: HOOK }, Date.now()))];
        await refuseHostStatus(database, db, 'submitted');
        for (const task of tasks) {
          const failure = await accept(deps, task, answer(`k-${task.client_task_id ?? ''}`, 'submitted'), 60_000).then(() => undefined, (error: unknown) => error);
          expect(failure, `${candidate.name}, ${task.client_task_id}: the database refused`).to.be.instanceOf(Error);
          const row = await parts.store.getTask(db, task.id);
          expect([row?.state, row?.kling_task_id, row?.kling_created_at], `${candidate.name}, ${task.client_task_id}: relay row`).to.deep.equal(['pending', null, null]);
          expect((await parts.hosts.video.get(db, task.host_row_id))?.task_id, `${candidate.name}, ${task.client_task_id}: host row`).to.equal('');
        }
        expect(await db('kling_relay_outbox').count({ n: '*' }).first().then((r) => Number(r?.n)), `${candidate.name}: outbox`).to.equal(0);
      }
      expect(tried).to.equal(2);
    });
  });
}
