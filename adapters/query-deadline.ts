import type { Knex } from 'knex';

/** The parts of knex's client the deadline wraps: where a query or a transaction takes its pool connection and gives it back. */
interface PoolUser {
  acquireConnection(): Promise<RawConnection>;
  releaseConnection(connection: RawConnection): Promise<void>;
}

/** A socket as a driver's connection holds it. */
interface Socket {
  destroy?(): void;
}

/** A driver's connection as knex's pool holds it: mysql2's socket is its `stream`, pg's its protocol connection's. */
interface RawConnection {
  __knex__disposed?: unknown;
  stream?: Socket;
  connection?: { stream?: Socket };
}

/** The events a knex instance emits for its queries. */
const QUERY_EVENTS = ['start', 'query', 'query-error', 'query-response'] as const;

/** knex's SQLite drivers: their queries run in the process, not over a socket that can hang. */
const IN_PROCESS = new Set(['sqlite3', 'better-sqlite3']);

/** Closes a connection under whatever waits on it, and has knex's pool drop it instead of handing it out again. */
function drop(connection: RawConnection, ms: number): void {
  connection.__knex__disposed = new Error(`the database did not answer within ${ms} ms; the connection was dropped`);
  // Closing the socket itself fails the statement waiting on it; a driver's own close would first
  // wait for the server to answer a goodbye.
  (connection.stream ?? connection.connection?.stream)?.destroy?.();
}

/**
 * `db` with a deadline of `ms` on every pool connection the relay takes through it, on a database
 * reached over a socket (MariaDB/MySQL, PostgreSQL); `db` itself on SQLite (its queries run in the
 * process and cannot hang on a socket) and for a transaction.
 *
 * A connection of knex's pool whose server went away without closing it (a failover, a partition)
 * leaves its query waiting for as long as TCP keeps the socket open, which may be many minutes, and
 * the pool hands out its other old connections in the same state. With the deadline, a query or a
 * whole transaction (its `BEGIN` and `COMMIT` included) that still holds its connection `ms` after
 * taking it from the pool has the connection closed under it: what waited on it fails, and knex drops
 * the connection from the pool (it is marked disposed), so later work gets new connections. The
 * relay's queries and transactions are short; `ms` is meant to be far above what any of them takes.
 *
 * The instance is knex's `withUserParams` copy of `db`: the same pool and settings, its own client
 * object, whose taking and giving back of pool connections are wrapped. Its query events are emitted
 * on `db`, where a host's listeners are.
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
  const client = copy.client as PoolUser;
  const pool = Object.getPrototypeOf(client) as PoolUser;
  const timers = new Map<RawConnection, NodeJS.Timeout>();
  client.acquireConnection = async function (this: PoolUser) {
    const connection = await pool.acquireConnection.call(this);
    timers.set(connection, setTimeout(() => drop(connection, ms), ms));
    return connection;
  };
  client.releaseConnection = function (this: PoolUser, connection: RawConnection) {
    clearTimeout(timers.get(connection));
    timers.delete(connection);
    return pool.releaseConnection.call(this, connection);
  };
  return copy;
}
