import { expect } from 'chai';
import knex, { type Knex } from 'knex';
import { mkdtempSync, rmSync } from 'node:fs';
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

  function open(name: string, cacheStatements?: boolean): Knex {
    db = knex({
      client: 'better-sqlite3',
      connection: { filename: join(dir, name) },
      useNullAsDefault: true,
      pool: { afterCreate: sqliteAfterCreate(cacheStatements === undefined ? {} : { cacheStatements }) },
    });
    return db;
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
});
