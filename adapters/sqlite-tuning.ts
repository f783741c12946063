/**
 * Connection set-up for a better-sqlite3 knex pool (`pool: { afterCreate: sqliteAfterCreate() }`), as
 * the demo host and the benchmark use it and docs/performance.md recommends for SQLite hosts.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** The part of a better-sqlite3 Database this touches. */
export interface SqliteConnection {
  pragma(sql: string): unknown;
  prepare(sql: string): unknown;
  /** The file the connection opened (better-sqlite3's `name`): '' or ':memory:' for none. */
  readonly name?: string;
  readonly memory?: boolean;
  close?(): unknown;
}

/** Prepared statements kept per connection: the relay's statements are a few dozen shapes. */
const STATEMENT_CACHE = 256;

/**
 * knex prepares every statement anew on better-sqlite3, and preparing was a tenth of the relay's CPU
 * time per submit. The relay sends the same few shapes over and over, so each connection keeps its
 * prepared statements by SQL text (oldest dropped past 256). Safe because knex runs a statement to the
 * end (`all()` or `run()`) before it prepares the next one on that connection, and SQLite re-prepares a
 * statement by itself after a schema change. Not for hosts that pass knex's `safeIntegers` query option:
 * it changes the statement, and the change would stick to the cached one.
 */
export function cachePreparedStatements(conn: SqliteConnection): void {
  conn.prepare = keepPrepared(conn.prepare.bind(conn));
}

/** `prepare`, keeping what it answers by SQL text (the oldest dropped past 256). */
export function keepPrepared<S>(prepare: (sql: string) => S): (sql: string) => S {
  const cache = new Map<string, S>();
  return (sql) => {
    let statement = cache.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      if (cache.size >= STATEMENT_CACHE) cache.delete(cache.keys().next().value as string);
      cache.set(sql, statement);
    }
    return statement;
  };
}

/** How often the background checkpointer looks at the log. */
const CHECKPOINT_EVERY_MS = 100;
/** The connections' own checkpoint stays on as a backstop, should the log outgrow this many pages (40 MB at 4 KiB). */
const BACKSTOP_PAGES = 10_000;

// Runs in the worker: its own connection, a passive checkpoint on a timer. CommonJS, as eval workers are.
const CHECKPOINTER = `
const { workerData, parentPort } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.filename, { fileMustExist: true });
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (error) { parentPort.postMessage({ error: String(error && error.message) }); }
}, workerData.everyMs);
parentPort.on('message', () => { clearInterval(timer); db.close(); parentPort.close(); });
`;

interface Checkpointer {
  worker: Worker;
  connections: number;
}
const checkpointers = new Map<string, Checkpointer>();

/**
 * Moves SQLite's WAL checkpoint off the event loop. With synchronous=NORMAL a commit only appends to
 * the log, but every 1000 pages the committing connection copies the log into the database and syncs
 * both: 4 to 6 ms during which better-sqlite3 blocks the event loop and every request in flight waits.
 * Here the connection's own checkpoint is pushed out to a backstop of 10000 pages, and one worker thread
 * per database file checkpoints every 100 ms on its own connection, so the sync waits there. The worker
 * is unref'd (it never keeps the process alive) and stops when the last connection to its file closes.
 * Under writes that never pause, a passive checkpoint does not reach the log's end before the next
 * commit, so SQLite does not start the log over: it grows to the backstop, whose checkpoint then runs
 * on the writer with most pages already copied (docs/performance.md has the figures).
 */
export function checkpointInBackground(conn: SqliteConnection): void {
  const filename = conn.name;
  if (!filename || conn.memory || filename === ':memory:') return;
  conn.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
  let entry = checkpointers.get(filename);
  if (!entry) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(CHECKPOINTER, { eval: true, workerData: { driver, filename, everyMs: CHECKPOINT_EVERY_MS } });
    worker.unref();
    // A failing checkpoint leaves the backstop in charge; nothing to do here but not crash.
    worker.on('error', () => checkpointers.delete(filename));
    worker.on('message', () => undefined);
    entry = { worker, connections: 0 };
    checkpointers.set(filename, entry);
  }
  entry.connections += 1;
  const close = conn.close?.bind(conn);
  if (!close) return;
  const owner = entry;
  conn.close = () => {
    owner.connections -= 1;
    if (owner.connections === 0 && checkpointers.get(filename) === owner) {
      checkpointers.delete(filename);
      owner.worker.postMessage('stop');
    }
    return close();
  };
}

export interface SqliteTuning {
  /** Keep prepared statements per connection (see cachePreparedStatements). Default true. */
  cacheStatements?: boolean;
  /** Checkpoint the WAL in a worker thread (see checkpointInBackground). Default true. */
  backgroundCheckpoint?: boolean;
}

/**
 * The pool's `afterCreate`. WAL lets readers (task queries) run beside the one writer instead of
 * waiting for it, and synchronous=NORMAL syncs the WAL at checkpoints instead of at every commit: a
 * power cut can lose the last commits but never corrupts the file. Then the statement cache and the
 * background checkpoint above.
 */
export function sqliteAfterCreate(tuning: SqliteTuning = {}): (conn: SqliteConnection, done: (error: Error | null, conn: SqliteConnection) => void) => void {
  return (conn, done) => {
    try {
      conn.pragma('journal_mode = WAL');
      conn.pragma('synchronous = NORMAL');
      if (tuning.cacheStatements ?? true) cachePreparedStatements(conn);
      if (tuning.backgroundCheckpoint ?? true) checkpointInBackground(conn);
      done(null, conn);
    } catch (error) {
      done(error as Error, conn);
    }
  };
}
