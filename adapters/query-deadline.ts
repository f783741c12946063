import type { Knex } from 'knex';

/** The parts of knex's client the deadline replaces: where every query builder and raw query of an instance is made. */
interface BuilderMaker {
  queryBuilder(): Knex.QueryBuilder;
  raw(...args: unknown[]): Knex.Raw;
}

/** The events a knex instance emits for its queries. */
const QUERY_EVENTS = ['start', 'query', 'query-error', 'query-response'] as const;

/** knex's SQLite drivers: their queries run in the process, not over a socket that can hang. */
const IN_PROCESS = new Set(['sqlite3', 'better-sqlite3']);

/**
 * `db` with a deadline of `ms` on every query it runs outside a transaction, on a database reached
 * over a socket (MariaDB/MySQL, PostgreSQL); `db` itself on SQLite (its queries run in the process and cannot hang on a socket) and
 * for a transaction.
 *
 * A connection of knex's pool whose server went away without closing it (a failover, a partition)
 * leaves its query waiting for as long as TCP keeps the socket open, which may be many minutes, and
 * the pool hands out its other old connections in the same state. With the deadline, such a query
 * fails with knex's KnexTimeoutError once `ms` passed, and knex drops its connection from the pool
 * (it marks it disposed, so it is never handed out again), so later queries get new connections.
 *
 * The instance is knex's `withUserParams` copy of `db`: the same pool and settings, its own client
 * object, on which query builders and raw queries are made with knex's `.timeout(ms)`. Its query
 * events are emitted on `db`, where a host's listeners are.
 * Queries inside a transaction begun from it have no deadline (knex makes a transaction's client
 * afresh from the driver's class).
 */
export function withQueryDeadline(db: Knex, ms: number): Knex {
  const { driverName } = db.client as { driverName?: string };
  if ((db as { isTransaction?: boolean }).isTransaction === true || IN_PROCESS.has(String(driverName))) return db;
  const copy = db.withUserParams((db as { userParams?: Record<string, unknown> }).userParams ?? {});
  // knex keeps the password as a property of the settings that its copy does not carry over (so that
  // it is not logged); the writers that open connections of their own read it from there.
  const settings = (db.client as { connectionSettings?: unknown }).connectionSettings;
  const copied = (copy.client as { connectionSettings?: unknown }).connectionSettings;
  const password = typeof settings === 'object' && settings !== null ? Object.getOwnPropertyDescriptor(settings, 'password') : undefined;
  if (password !== undefined && typeof copied === 'object' && copied !== null && copied !== settings) Object.defineProperty(copied, 'password', password);
  // knex copies the listeners `db` has now; the host's listeners for its queries are on `db`, also
  // those added later, so the copy's events go to `db` instead.
  for (const event of QUERY_EVENTS) {
    copy.removeAllListeners(event);
    copy.on(event, (...args: unknown[]) => db.emit(event, ...args));
  }
  const maker = copy.client as BuilderMaker;
  const made = Object.getPrototypeOf(maker) as BuilderMaker;
  maker.queryBuilder = function (this: BuilderMaker) {
    return made.queryBuilder.call(this).timeout(ms);
  };
  maker.raw = function (this: BuilderMaker, ...args: unknown[]) {
    return made.raw.apply(this, args).timeout(ms);
  };
  return copy;
}
