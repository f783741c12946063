import type { Knex } from 'knex';
import { affectedRows, createTableIfAbsent, toNumber, toNumberOrNull, toStringOrNull } from './dialect.js';
import { assertIdentifier } from './identifiers.js';

type Db = Knex | Knex.Transaction;

/** `pending`: to be delivered (or being delivered under a lease); `delivered` and `gave_up` are final. */
export type NoticeState = 'pending' | 'delivered' | 'gave_up';

/** A row of `kling_relay_outbox`: one notice to a caller's callback_url. Times are unix milliseconds. */
export interface OutboxNotice {
  id: number;
  /** Sent as `webhook-id`: stable across retries, so the receiver can drop a repeat. */
  notice_id: string;
  /** The relay task (kling_relay_tasks.id) the notice is about. */
  task_id: number;
  /** The task_status the notice announces; one notice per task and status. */
  status: string;
  /** The caller's callback_url when the notice was written. */
  url: string;
  /** The JSON body, exactly as it is POSTed. */
  body: string;
  state: NoticeState;
  attempts: number;
  next_attempt_at: number;
  lease_owner: string | null;
  lease_until: number | null;
  /** Why the last attempt failed (refused address, timeout, HTTP status ...); null after success. */
  last_error: string | null;
  /** The receiver's HTTP status on the last attempt, when it answered. */
  last_http_status: number | null;
  delivered_at: number | null;
  gave_up_at: number | null;
  created_at: number;
  updated_at: number;
}

export type NewOutboxNotice = Pick<OutboxNotice, 'notice_id' | 'task_id' | 'status' | 'url' | 'body' | 'created_at'>;

const COLUMN_SET: Record<keyof OutboxNotice, true> = {
  id: true,
  notice_id: true,
  task_id: true,
  status: true,
  url: true,
  body: true,
  state: true,
  attempts: true,
  next_attempt_at: true,
  lease_owner: true,
  lease_until: true,
  last_error: true,
  last_http_status: true,
  delivered_at: true,
  gave_up_at: true,
  created_at: true,
  updated_at: true,
};
const COLUMNS = Object.keys(COLUMN_SET) as (keyof OutboxNotice)[];
const NUMBER_COLUMNS = new Set<string>(['id', 'task_id', 'attempts', 'next_attempt_at', 'created_at', 'updated_at']);
const NULLABLE_NUMBER_COLUMNS = new Set<string>(['lease_until', 'last_http_status', 'delivered_at', 'gave_up_at']);

const CLAIM_SPARE = 8;

/** Index names the outbox derives from the prefix (RelayStore checks that every derived name fits). */
export const OUTBOX_INDEX_SUFFIXES = ['outbox_due', 'outbox_task_status', 'outbox_notice_id'];

/**
 * The outbox of notices to callers' callback URLs. A notice is written in the transaction that moves
 * its task, so a committed status change always has its notice and a rolled-back one never does; the
 * delivery worker claims due notices with a lease, one task's notices strictly in order.
 */
export class OutboxStore {
  readonly table: string;

  constructor(readonly prefix = 'kling_relay_') {
    assertIdentifier(prefix, 'tablePrefix');
    this.table = `${prefix}outbox`;
  }

  async migrate(db: Knex): Promise<void> {
    const p = this.prefix;
    await createTableIfAbsent(db, this.table, (t) => {
      t.increments('id').primary();
      t.string('notice_id', 64).notNullable().unique({ indexName: `${p}outbox_notice_id` });
      t.integer('task_id').notNullable();
      t.string('status', 16).notNullable();
      t.text('url').notNullable();
      // MySQL's TEXT stops at 64 KB; a task_result with many URLs can pass that.
      t.text('body', 'mediumtext').notNullable();
      t.string('state', 16).notNullable();
      t.integer('attempts').notNullable().defaultTo(0);
      t.bigInteger('next_attempt_at').notNullable();
      t.string('lease_owner', 191).nullable();
      t.bigInteger('lease_until').nullable();
      t.text('last_error').nullable();
      t.integer('last_http_status').nullable();
      t.bigInteger('delivered_at').nullable();
      t.bigInteger('gave_up_at').nullable();
      t.bigInteger('created_at').notNullable();
      t.bigInteger('updated_at').notNullable();
      // One notice per task and status at the database: a status is announced once, whoever applied it.
      t.unique(['task_id', 'status'], { indexName: `${p}outbox_task_status` });
      t.index(['state', 'next_attempt_at'], `${p}outbox_due`);
    });
  }

  /** Writes a notice, due at once. A second notice for the same task and status is ignored. */
  async add(trx: Db, notice: NewOutboxNotice): Promise<void> {
    const row = { ...notice, state: 'pending', attempts: 0, next_attempt_at: notice.created_at, updated_at: notice.created_at };
    await trx(this.table).insert(row).onConflict(['task_id', 'status']).ignore();
  }

  /** A task's notices, oldest first. */
  async forTask(db: Db, taskId: number): Promise<OutboxNotice[]> {
    const rows: unknown[] = await db(this.table).select(COLUMNS).where('task_id', taskId).orderBy('id', 'asc');
    return rows.map((row) => toNotice(row as Record<string, unknown>));
  }

  /**
   * Claims up to `limit` due notices for `owner` until `now + leaseMs`: pending, due, lease free or
   * expired, and the oldest pending notice of their task (a later status waits for the earlier one).
   * Each claim is a conditional UPDATE that re-checks state, due time and lease, so of two instances
   * that saw the same candidate only one wins, and a notice another instance has just put back for a
   * later retry is not taken again at once.
   */
  async claimDue(db: Db, owner: string, now: number, leaseMs: number, limit: number): Promise<OutboxNotice[]> {
    const t = this.table;
    const candidates: unknown[] = await db({ notice: t })
      .select('notice.id')
      .where('notice.state', 'pending')
      .andWhere('notice.next_attempt_at', '<=', now)
      .andWhere((q) => void q.whereNull('notice.lease_until').orWhere('notice.lease_until', '<', now))
      .whereNotExists((q) => {
        void q.select('earlier.id').from({ earlier: t }).whereRaw('?? = ??', ['earlier.task_id', 'notice.task_id']).andWhere('earlier.state', 'pending').andWhereRaw('?? < ??', ['earlier.id', 'notice.id']);
      })
      .orderBy([{ column: 'notice.next_attempt_at', order: 'asc' }, { column: 'notice.id', order: 'asc' }])
      // A few spare candidates: instances and workers claiming at once lose some to each other.
      .limit(Math.max(0, Math.floor(limit)) + CLAIM_SPARE);
    const won: number[] = [];
    for (const candidate of candidates) {
      if (won.length >= limit) break;
      const id = toNumber((candidate as { id: unknown }).id);
      if (await this.claim(db, id, owner, now, leaseMs)) won.push(id);
    }
    if (won.length === 0) return [];
    const rows: unknown[] = await db(t).select(COLUMNS).whereIn('id', won).andWhere('lease_owner', owner);
    return rows.map((row) => toNotice(row as Record<string, unknown>)).sort((a, b) => a.id - b.id);
  }

  /**
   * The compare-and-set of one claim: the notice must still be pending, due and free of a live lease
   * when the UPDATE runs, whatever the candidate query saw.
   */
  async claim(db: Db, id: number, owner: string, now: number, leaseMs: number): Promise<boolean> {
    const changed = await db(this.table)
      .where({ id, state: 'pending' })
      .andWhere('next_attempt_at', '<=', now)
      .andWhere((q) => void q.whereNull('lease_until').orWhere('lease_until', '<', now))
      .update({ lease_owner: owner, lease_until: now + leaseMs });
    return affectedRows(changed) > 0;
  }

  /** Records a successful delivery. Only the lease owner can; false when the lease was lost. */
  async markDelivered(db: Db, id: number, owner: string, attempts: number, httpStatus: number, now: number): Promise<boolean> {
    const changed = await db(this.table)
      .where({ id, lease_owner: owner, state: 'pending' })
      .update({ state: 'delivered', attempts, last_http_status: httpStatus, last_error: null, delivered_at: now, lease_owner: null, lease_until: null, updated_at: now });
    return affectedRows(changed) > 0;
  }

  /**
   * Deletes at most `limit` notices that were delivered or given up before `before`, oldest first;
   * returns how many. A notice that ended is never written again (a task's status is announced once),
   * and a pending one is never deleted. A notice ends at or after it was due, so the due index
   * (`state`, `next_attempt_at`) narrows the search to the old ones.
   */
  async prune(db: Db, before: number, limit: number): Promise<number> {
    const ended = ['delivered', 'gave_up'];
    const rows = (await db(this.table)
      .select('id')
      .whereIn('state', ended)
      .andWhere('next_attempt_at', '<', before)
      .andWhere('updated_at', '<', before)
      .orderBy([{ column: 'next_attempt_at' }, { column: 'id' }])
      .limit(limit)) as { id: number | string }[];
    if (rows.length === 0) return 0;
    const deleted = await db(this.table).whereIn('id', rows.map((row) => toNumber(row.id))).whereIn('state', ended).delete();
    return affectedRows(deleted);
  }

  /**
   * Records a failed attempt: due again at `retryAt`, or given up for good when `retryAt` is null.
   * Only the lease owner can; false when the lease was lost.
   */
  async markFailed(db: Db, id: number, owner: string, attempt: { attempts: number; error: string; httpStatus: number | null; retryAt: number | null }, now: number): Promise<boolean> {
    const changed = await db(this.table)
      .where({ id, lease_owner: owner, state: 'pending' })
      .update({
        state: attempt.retryAt === null ? 'gave_up' : 'pending',
        attempts: attempt.attempts,
        last_error: attempt.error,
        last_http_status: attempt.httpStatus,
        next_attempt_at: attempt.retryAt ?? now,
        gave_up_at: attempt.retryAt === null ? now : null,
        lease_owner: null,
        lease_until: null,
        updated_at: now,
      });
    return affectedRows(changed) > 0;
  }
}

function toNotice(raw: Record<string, unknown>): OutboxNotice {
  const notice: Record<string, unknown> = {};
  for (const column of COLUMNS) {
    const value = raw[column];
    if (NUMBER_COLUMNS.has(column)) notice[column] = toNumber(value);
    else if (NULLABLE_NUMBER_COLUMNS.has(column)) notice[column] = toNumberOrNull(value);
    else notice[column] = toStringOrNull(value);
  }
  return notice as unknown as OutboxNotice;
}
