/**
 * Prepares a bench database: the host tables, the relay's tables, the bench user and the other callers
 * of the many-callers run with a large balance each, and optionally `rows` finished tasks already in the host's Video table, the relay's task table and
 * its ledger (the table-size scenario). Rows go in with multi-row INSERTs inside one transaction.
 */
import type { Knex } from 'knex';
import { createDefaultHostTables } from '../adapters/host-schema.js';
import { RelayStore } from '../adapters/relay-store.js';
import { BENCH_CALLERS, BENCH_START_QUOTA, BENCH_USERNAME, callerName } from './config.js';

/** Every table the bench writes, dropped before a run so that each starts from the same state. */
const TABLES = ['kling_relay_ledger', 'kling_relay_tasks', 'kling_relay_resources', 'videos', 'images', 'users'];
/** Users owning the seeded rows by default; the bench user is one of them, as a busy host's heavy user would be. */
const OWNERS = 1000;
/** Rows per INSERT: under SQLite's 32766 bound variables with the task table's 27 columns. */
const CHUNK = 1000;

/**
 * One multi-row INSERT ... VALUES. knex's own multi-row insert on SQLite is a UNION ALL of SELECTs,
 * which SQLite caps at 500 terms.
 */
async function bulkInsert(trx: Knex.Transaction, table: string, rows: Record<string, Knex.Value>[]): Promise<void> {
  const columns = Object.keys(rows[0] ?? {});
  if (columns.length === 0) return;
  const tuple = `(${columns.map(() => '?').join(', ')})`;
  const sql = `insert into ?? (${columns.map(() => '??').join(', ')}) values ${rows.map(() => tuple).join(', ')}`;
  await trx.raw(sql, [table, ...columns, ...rows.flatMap((row) => columns.map((c) => row[c] ?? null))]);
}

export interface SeedResult {
  userId: number;
  rows: number;
  ms: number;
}

/** `owners`: how many users the rows are spread over (1: every row is the bench user's). */
export async function seed(db: Knex, rows: number, owners = OWNERS): Promise<SeedResult> {
  const started = Date.now();
  for (const table of TABLES) await db.schema.dropTableIfExists(table);
  await createDefaultHostTables(db);
  await new RelayStore().migrate(db);
  const user = { username: BENCH_USERNAME, quota: BENCH_START_QUOTA, used_quota: 0 };
  // MySQL has no RETURNING: its insert answers the new id by itself (and knex warns about ['id']).
  const inserted: unknown[] = (db.client as { dialect?: string }).dialect === 'mysql' ? await db('users').insert(user) : await db('users').insert(user, ['id']);
  const first = inserted[0];
  const userId = Number(typeof first === 'object' && first !== null ? (first as { id: unknown }).id : first);
  // The other callers of the many-callers run, after the bench user, each with a balance of its own.
  const others = Array.from({ length: BENCH_CALLERS - 1 }, (_, i) => ({ username: callerName(i + 1), quota: BENCH_START_QUOTA, used_quota: 0 }));
  await db('users').insert(others);
  await db.transaction(async (trx) => {
    const now = Date.now();
    const seconds = Math.floor(now / 1000);
    for (let start = 1; start <= rows; start += CHUNK) {
      const ids = Array.from({ length: Math.min(CHUNK, rows - start + 1) }, (_, i) => start + i);
      // Ids are given, not generated, so that the three tables line up without reading anything back.
      const owner = (id: number): number => (id % owners === 0 ? userId : userId + (id % owners));
      await bulkInsert(trx, 'videos', ids.map((id) => ({
        id, task_id: `seed-${id}`, user_id: owner(id), username: 'seeded', channel_id: 'bench', model: 'kling-v1', provider: 'kling',
        type: 'text2video', status: 'succeed', quota: 25000, mode: 'std', duration: 5, result: '{"videos":[]}', fail_reason: '',
        created_at: seconds - rows + id, updated_at: seconds - rows + id,
      })));
      await bulkInsert(trx, 'kling_relay_tasks', ids.map((id) => ({
        id, external_task_id: `kr-video-${id}-seed`, client_task_id: null, kling_task_id: `seed-${id}`, account_id: 'bench',
        endpoint: '/v1/videos/text2video', request_type: 'text2video', table_kind: 'video', host_row_id: String(id), user_id: String(owner(id)),
        state: 'succeed', billing: 'hold', hold_quota: 25000, charge_quota: 25000, model: 'kling-v1', pricing: '{"type":"per_second","unit":0.01}',
        status_msg: '', result: '{"videos":[]}', kling_created_at: now - rows + id, kling_updated_at: now - rows + id, client_callback_url: null,
        lease_owner: null, lease_until: null, next_check_at: null, check_count: 1, checked_at: now - rows + id, created_at: now - rows + id, updated_at: now - rows + id,
      })));
      await bulkInsert(trx, 'kling_relay_ledger', ids.flatMap((id) => [
        { task_id: id, user_id: String(owner(id)), kind: 'hold', amount: -25000, terminal: null, created_at: now - rows + id },
        { task_id: id, user_id: String(owner(id)), kind: 'settle', amount: 0, terminal: 1, created_at: now - rows + id },
      ]));
    }
  });
  // PostgreSQL's sequences do not move for explicit ids: the relay's own inserts must start after them.
  if ((db.client as { dialect?: string }).dialect === 'postgresql' && rows > 0) {
    for (const table of ['videos', 'kling_relay_tasks']) await db.raw(`SELECT setval(pg_get_serial_sequence('${table}', 'id'), ?)`, [rows]);
  }
  return { userId, rows, ms: Date.now() - started };
}
