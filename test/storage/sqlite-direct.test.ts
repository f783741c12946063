import { expect } from 'chai';
import type { Knex } from 'knex';
import { isUniqueViolation } from '../../adapters/relay-store.js';
import { DirectSqlite } from '../../adapters/sqlite-direct.js';
import { testDatabases } from '../support/databases.js';

const databases = testDatabases();
const sqlite = databases.find((d) => d.name === 'sqlite');
if (!sqlite) throw new Error('SQLite is always in the list of test databases');

describe("adapters/sqlite-direct: short write transactions on better-sqlite3 without knex's runner", () => {
  let db: Knex;
  let direct: DirectSqlite;
  beforeEach(async () => {
    db = sqlite.connect();
    await db.schema.createTable('things', (t) => {
      t.increments('id');
      t.string('name').notNullable().unique();
      t.bigInteger('size').notNullable().defaultTo(0);
      t.boolean('flag').nullable();
      t.bigInteger('seen_at').nullable();
    });
    const made = DirectSqlite.for(db);
    if (!made) throw new Error('DirectSqlite.for should serve a better-sqlite3 knex');
    direct = made;
  });
  afterEach(() => db.destroy());

  it('commits every statement together and answers what the work returned', async () => {
    const ids = await direct.transaction((run) => {
      const a = Number(run(db('things').insert({ name: 'a', size: 1 })).lastInsertRowid);
      const b = Number(run(db('things').insert({ name: 'b', size: 2 })).lastInsertRowid);
      const changed = run(db('things').where('id', a).increment('size', 10)).changes;
      return { a, b, changed };
    });
    expect(ids).to.deep.equal({ a: 1, b: 2, changed: 1 });
    expect(await db('things').select('name', 'size').orderBy('id')).to.deep.equal([{ name: 'a', size: 11 }, { name: 'b', size: 2 }]);
  });

  it('reports 0 changes for an update whose condition holds for no row', async () => {
    await db('things').insert({ name: 'a', size: 5 });
    const changes = await direct.transaction((run) => run(db('things').where('name', 'a').andWhere('size', '>=', 6).decrement('size', 6)).changes);
    expect(changes).to.equal(0);
    expect(await db('things').pluck('size')).to.deep.equal([5]);
  });

  it('rolls everything back when the work throws, passes the error on, and frees the connection', async () => {
    const failure = await direct
      .transaction((run) => {
        run(db('things').insert({ name: 'a' }));
        throw new Error('changed my mind');
      })
      .then(() => undefined, (error: unknown) => error as Error);
    expect(failure?.message).to.equal('changed my mind');
    expect(await db('things').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    // The pool has one connection on SQLite: a query answering proves it was given back.
    await db('things').insert({ name: 'after' });
    expect(await db('things').pluck('name')).to.deep.equal(['after']);
  });

  it("rolls back on the database's own refusal, which stays recognisable as a unique violation", async () => {
    await db('things').insert({ name: 'taken' });
    const failure = await direct
      .transaction((run) => {
        run(db('things').insert({ name: 'fresh' }));
        run(db('things').insert({ name: 'taken' }));
      })
      .then(() => undefined, (error: unknown) => error);
    expect(isUniqueViolation(failure), String(failure)).to.equal(true);
    expect(await db('things').pluck('name')).to.deep.equal(['taken']);
  });

  it('refuses work that returns a promise (the connection must not be held across an await), and rolls it back', async () => {
    const failure = await direct
      .transaction((run) => {
        run(db('things').insert({ name: 'a' }));
        return Promise.resolve(1);
      })
      .then(() => undefined, (error: unknown) => error as Error);
    expect(failure).to.be.instanceOf(TypeError);
    expect(failure?.message).to.match(/must be synchronous/);
    expect(await db('things').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
  });

  it('refuses a read, and formats dates and booleans as knex does on better-sqlite3', async () => {
    const read = await direct.transaction((run) => run(db('things').select('*'))).then(() => undefined, (error: unknown) => error as Error);
    expect(read?.message).to.match(/writes only/);
    const at = new Date('2026-12-01T10:00:00Z');
    await direct.transaction((run) => run(db('things').insert({ name: 'dated', flag: true, seen_at: at })));
    await db('things').insert({ name: 'through knex', flag: true, seen_at: at });
    expect(await db('things').select('name', 'flag', 'seen_at').orderBy('id')).to.deep.equal([
      { name: 'dated', flag: 1, seen_at: at.valueOf() },
      { name: 'through knex', flag: 1, seen_at: at.valueOf() },
    ]);
  });

  it('waits for a knex transaction that holds the connection, and runs after it', async () => {
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const trx = db.transaction(async (t) => {
      await t('things').insert({ name: 'first' });
      order.push('knex transaction wrote');
      await held;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const second = direct.transaction((run) => {
      order.push('direct transaction ran');
      run(db('things').insert({ name: 'second' }));
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(order).to.deep.equal(['knex transaction wrote']);
    release();
    await Promise.all([trx, second]);
    expect(order).to.deep.equal(['knex transaction wrote', 'direct transaction ran']);
    expect(await db('things').orderBy('id').pluck('name')).to.deep.equal(['first', 'second']);
  });

  it('compiles a template once per key and binds its values by name, whatever order knex puts the columns in', async () => {
    const insert = () => direct.template('things:insert', (param) => db('things').insert({ size: param('size'), name: param('name'), flag: param('flag') }));
    const first = insert();
    expect(insert(), 'the same template for the same key').to.equal(first);
    expect(first.names).to.have.members(['size', 'name', 'flag']);
    const update = direct.template('things:grow', (param) => db('things').where('name', param('name')).whereIn('size', [param('small'), param('tiny')]).update({ size: param('size') }));
    const result = await direct.transaction((run) => {
      run(first, { name: 'a', size: 1, flag: false });
      run(first, { flag: true, size: 2, name: 'b' });
      run(first, { name: 'c', size: 3, flag: null });
      return run(update, { name: 'b', small: 2, tiny: 0, size: 20 }).changes;
    });
    expect(result).to.equal(1);
    expect(await db('things').select('name', 'size', 'flag').orderBy('id')).to.deep.equal([
      { name: 'a', size: 1, flag: 0 },
      { name: 'b', size: 20, flag: 1 },
      { name: 'c', size: 3, flag: null },
    ]);
  });

  it('refuses a template value that is missing (rolling back) and a template built with a literal value', async () => {
    const insert = direct.template('things:insert-name', (param) => db('things').insert({ name: param('name'), size: param('size') }));
    const missing = await direct
      .transaction((run) => {
        run(insert, { name: 'a', size: 1 });
        run(insert, { name: 'b' });
      })
      .then(() => undefined, (error: unknown) => error as Error);
    expect(missing?.message).to.match(/no value for "size"/);
    expect(await db('things').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    expect(() => direct.template('things:literal', (param) => db('things').insert({ name: param('name'), size: 7 }))).to.throw(TypeError, /every value must be a param\(\), found 7/);
  });

  it('commits calls made together in one transaction, each in a savepoint: a failing one undoes only its own writes', async () => {
    const calls = Array.from({ length: 20 }, (_, i) =>
      direct.transaction((run) => {
        run(db('things').insert({ name: `thing-${i}`, size: i }));
        if (i === 7) {
          run(db('things').insert({ name: 'seven-extra' }));
          throw new Error('call 7 changed its mind');
        }
        return i * 10;
      }),
    );
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason.message)).to.deep.equal(['call 7 changed its mind']);
    expect(outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []))).to.deep.equal(Array.from({ length: 20 }, (_, i) => i * 10).filter((v) => v !== 70));
    const names = await db('things').orderBy('id').pluck('name');
    expect(names).to.deep.equal(Array.from({ length: 20 }, (_, i) => `thing-${i}`).filter((n) => n !== 'thing-7'));
  });

  it('runs calls made together in their order, each seeing the writes before it', async () => {
    await db('things').insert({ name: 'balance', size: 5 });
    const take = () => direct.transaction((run) => run(db('things').where('name', 'balance').andWhere('size', '>=', 3).decrement('size', 3)).changes);
    expect(await Promise.all([take(), take(), take()])).to.deep.equal([1, 0, 0]);
    expect(await db('things').where('name', 'balance').pluck('size')).to.deep.equal([2]);
  });

  it('fails every call of a batch whose COMMIT fails, and leaves nothing of it', async () => {
    await db.raw('PRAGMA foreign_keys = ON');
    await db.raw('CREATE TABLE parents (id INTEGER PRIMARY KEY)');
    await db.raw('CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parents(id) DEFERRABLE INITIALLY DEFERRED)');
    // SQLite checks a deferred foreign key at COMMIT: the second call's orphan fails the whole batch.
    const calls = [
      direct.transaction((run) => run(db('things').insert({ name: 'innocent' })).changes),
      direct.transaction((run) => run(db('children').insert({ parent_id: 42 })).changes),
    ];
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.map((o) => o.status)).to.deep.equal(['rejected', 'rejected']);
    expect(String((outcomes[0] as PromiseRejectedResult).reason)).to.match(/FOREIGN KEY/);
    expect(await db('things').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    expect(await db('children').count({ n: '*' })).to.deep.equal([{ n: 0 }]);
    expect(await direct.transaction((run) => run(db('things').insert({ name: 'after' })).changes), 'the next batch').to.equal(1);
  });

  it('serves only a better-sqlite3 knex instance, not a transaction of one nor another database', async () => {
    await db.transaction(async (trx) => {
      expect(DirectSqlite.for(trx as unknown as Knex)).to.equal(undefined);
    });
    for (const other of databases.filter((d) => d.name !== 'sqlite')) {
      const k = other.connect();
      try {
        expect(DirectSqlite.for(k), other.name).to.equal(undefined);
      } finally {
        await k.destroy();
      }
    }
  });
});
