import { expect } from 'chai';
import knex, { type Knex } from 'knex';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sqliteAfterCreate, type SqliteConnection } from '../../adapters/sqlite-tuning.js';

describe('adapters/sqlite-tuning: the recommended better-sqlite3 pool set-up', () => {
  let dir: string;
  let db: Knex | undefined;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kling-relay-sqlite-tuning-'));
  });
  afterEach(async () => {
    await db?.destroy();
    db = undefined;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function open(name: string, cacheStatements?: boolean, backgroundCheckpoint?: boolean): Knex {
    db = knex({
      client: 'better-sqlite3',
      connection: { filename: name === ':memory:' ? name : join(dir, name) },
      useNullAsDefault: true,
      pool: {
        afterCreate: sqliteAfterCreate({
          ...(cacheStatements === undefined ? {} : { cacheStatements }),
          ...(backgroundCheckpoint === undefined ? {} : { backgroundCheckpoint }),
        }),
      },
    });
    return db;
  }

  async function until(what: string, check: () => boolean, ms = 3000): Promise<void> {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Whether the database file itself (not its write-ahead log) holds these bytes. */
  function inMainFile(name: string, marker: string): boolean {
    return readFileSync(join(dir, name)).includes(Buffer.from(marker));
  }

  async function raw<T>(k: Knex, use: (conn: SqliteConnection) => T): Promise<T> {
    const client = k.client as { acquireConnection(): Promise<SqliteConnection>; releaseConnection(conn: SqliteConnection): Promise<void> };
    const conn = await client.acquireConnection();
    try {
      return use(conn);
    } finally {
      await client.releaseConnection(conn);
    }
  }

  it('turns on WAL and synchronous=NORMAL', async () => {
    const k = open('pragmas.sqlite');
    const mode = (await k.raw('PRAGMA journal_mode')) as { journal_mode: string }[];
    const sync = (await k.raw('PRAGMA synchronous')) as { synchronous: number }[];
    expect(mode[0]?.journal_mode).to.equal('wal');
    expect(sync[0]?.synchronous).to.equal(1);
  });

  it('prepares a statement once per SQL text, and drops the oldest past 256', async () => {
    const k = open('cache.sqlite');
    await raw(k, (conn) => {
      const first = conn.prepare('SELECT 1 AS n');
      expect(conn.prepare('SELECT 1 AS n')).to.equal(first);
      expect(conn.prepare('SELECT 2 AS n')).to.not.equal(first);
      for (let i = 0; i < 300; i++) conn.prepare(`SELECT ${i + 10} AS n`);
      expect(conn.prepare('SELECT 1 AS n'), 'after 300 other statements').to.not.equal(first);
    });
    await k.destroy();
    const off = open('no-cache.sqlite', false);
    await raw(off, (conn) => expect(conn.prepare('SELECT 1 AS n')).to.not.equal(conn.prepare('SELECT 1 AS n')));
  });

  it('answers reused statements with fresh values, also after the schema changed', async () => {
    const k = open('reuse.sqlite');
    await k.schema.createTable('things', (t) => {
      t.increments('id');
      t.string('name');
    });
    for (const name of ['a', 'b', 'c']) await k('things').insert({ name });
    expect(await k('things').where('name', 'b').first('id', 'name')).to.deep.equal({ id: 2, name: 'b' });
    expect(await k('things').where('name', 'c').first('id', 'name')).to.deep.equal({ id: 3, name: 'c' });
    expect(await k('things').where('id', 2).update({ name: 'B' })).to.equal(1);
    expect(await k('things').where('id', 9).update({ name: 'x' })).to.equal(0);
    const before = await k('things').select('*').orderBy('id');
    await k.schema.alterTable('things', (t) => t.integer('size').notNullable().defaultTo(7));
    const after = await k('things').select('*').orderBy('id');
    expect(before.map((r: Record<string, unknown>) => Object.keys(r))).to.deep.equal([['id', 'name'], ['id', 'name'], ['id', 'name']]);
    expect(after).to.deep.equal([{ id: 1, name: 'a', size: 7 }, { id: 2, name: 'B', size: 7 }, { id: 3, name: 'c', size: 7 }]);
  });

  it('checkpoints the write-ahead log in the background: a commit reaches the database file without another write', async () => {
    const k = open('checkpoint.sqlite');
    await k.schema.createTable('notes', (t) => {
      t.increments('id');
      t.string('text');
    });
    const auto = (await k.raw('PRAGMA wal_autocheckpoint')) as { wal_autocheckpoint: number }[];
    expect(auto[0]?.wal_autocheckpoint, "the connection's own checkpoint, left as a backstop").to.equal(10000);
    const marker = `marker-${Math.random().toString(36).slice(2)}`;
    await k('notes').insert({ text: marker });
    // SQLite alone would leave the row in the log until 1000 pages had piled up there.
    await until('the row is copied into the database file', () => inMainFile('checkpoint.sqlite', marker));
    expect(await k('notes').pluck('text')).to.deep.equal([marker]);
  });

  it("stops the background checkpoint with the pool: the last close removes SQLite's -wal and -shm files", async () => {
    const k = open('closing.sqlite');
    await k.schema.createTable('notes', (t) => t.string('text'));
    await k('notes').insert({ text: 'kept' });
    expect(existsSync(join(dir, 'closing.sqlite-wal'))).to.equal(true);
    await k.destroy();
    db = undefined;
    // SQLite deletes them when the last connection to the file closes: the checkpointer's too.
    const gone = (): boolean => !existsSync(join(dir, 'closing.sqlite-wal')) && !existsSync(join(dir, 'closing.sqlite-shm'));
    await until('the -wal and -shm files are gone', gone);
    // and stay gone: a checkpointer left running would open them again at its next look (every 100 ms)
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(gone(), 'no -wal or -shm file 300 ms later').to.equal(true);
    const again = open('closing.sqlite');
    expect(await again('notes').pluck('text')).to.deep.equal(['kept']);
  });

  it('leaves the checkpoint to SQLite with backgroundCheckpoint: false, and for an in-memory database', async () => {
    const k = open('own-checkpoint.sqlite', undefined, false);
    const auto = (await k.raw('PRAGMA wal_autocheckpoint')) as { wal_autocheckpoint: number }[];
    expect(auto[0]?.wal_autocheckpoint).to.equal(1000);
    await k.schema.createTable('notes', (t) => t.string('text'));
    const marker = `marker-${Math.random().toString(36).slice(2)}`;
    await k('notes').insert({ text: marker });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(inMainFile('own-checkpoint.sqlite', marker), 'still only in the log').to.equal(false);
    await k.destroy();
    const memory = open(':memory:');
    await memory.schema.createTable('notes', (t) => t.string('text'));
    await memory('notes').insert({ text: 'in memory' });
    expect(await memory('notes').pluck('text')).to.deep.equal(['in memory']);
  });
});
