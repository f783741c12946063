import { expect } from 'chai';
import type { Knex } from 'knex';
import { withQueryDeadline } from '../../adapters/query-deadline.js';
import { testDatabases } from '../support/databases.js';

/** The server's id of the pool connection the next query of `db` gets. */
async function connectionId(name: string, db: Knex): Promise<number> {
  if (name === 'mysql') {
    const [rows] = (await db.raw('SELECT CONNECTION_ID() AS id')) as [{ id: number }[]];
    return Number(rows[0]?.id);
  }
  const result = (await db.raw('SELECT pg_backend_pid() AS id')) as { rows: { id: number }[] };
  return Number(result.rows[0]?.id);
}

describe('the deadline on the relay queries through knex', () => {
  for (const database of testDatabases()) {
    describe(`on ${database.name}`, () => {
      let db: Knex;
      beforeEach(() => {
        db = database.connect();
      });
      afterEach(async () => {
        await db.destroy();
      });

      if (database.name === 'sqlite') {
        it('is the instance itself: its queries run in the process', () => {
          expect(withQueryDeadline(db, 500)).to.equal(db);
        });
        return;
      }

      const sleep = database.name === 'mysql' ? 'SELECT SLEEP(2) AS slept' : 'SELECT pg_sleep(2) AS slept';

      it('fails a query unanswered past the deadline, and the next query runs on another connection', async () => {
        const relayDb = withQueryDeadline(db, 400);
        // One connection in the pool, so that a connection given back would be the next one handed out.
        const first = await connectionId(database.name, relayDb);
        const started = Date.now();
        const error = await relayDb.raw(sleep).then(
          () => undefined,
          (e: unknown) => e as Error,
        );
        expect(error, 'the query failed').to.be.instanceOf(Error);
        expect(Date.now() - started).to.be.within(350, 1_500);
        // knex dropped the connection that timed out instead of handing it out again.
        const next = await connectionId(database.name, relayDb);
        expect(next).to.be.a('number').and.not.equal(first);
        const rows = (await relayDb.select(relayDb.raw('1 AS one'))) as { one: number | string }[];
        expect(Number(rows[0]?.one)).to.equal(1);
      });

      it('fails a transaction that holds its connection past the deadline, and gives the work after it a new connection', async () => {
        const relayDb = withQueryDeadline(db, 400);
        const started = Date.now();
        const inside: number[] = [];
        const error = await relayDb
          .transaction(async (trx) => {
            inside.push(await connectionId(database.name, trx));
            await trx.raw(sleep);
          })
          .then(
            () => undefined,
            (e: unknown) => e as Error,
          );
        expect(error, 'the transaction failed').to.be.instanceOf(Error);
        expect(Date.now() - started).to.be.within(350, 1_500);
        expect(await connectionId(database.name, relayDb)).to.be.a('number').and.not.equal(inside[0]);
        // A transaction within the deadline commits.
        await relayDb.transaction(async (trx) => void (await trx.raw('SELECT 1')));
      });

      it('leaves the host instance without a deadline', async () => {
        withQueryDeadline(db, 100);
        const first = await connectionId(database.name, db);
        await db.raw(database.name === 'mysql' ? 'SELECT SLEEP(0.3) AS slept' : 'SELECT pg_sleep(0.3) AS slept');
        expect(await connectionId(database.name, db)).to.equal(first);
      });

      it("emits its query events on the host's instance, once each, also to listeners added later", async () => {
        const relayDb = withQueryDeadline(db, 2_000);
        const early: string[] = [];
        db.on('query', (query: { sql: string }) => early.push(query.sql));
        const late: string[] = [];
        const errors: string[] = [];
        db.on('query', (query: { sql: string }) => late.push(query.sql));
        db.on('query-error', (_error: unknown, query: { sql: string }) => errors.push(query.sql));
        await relayDb.raw('SELECT 42 AS answer');
        await relayDb.raw('SELECT no_such_column FROM no_such_table').catch(() => undefined);
        expect(early).to.deep.equal(['SELECT 42 AS answer', 'SELECT no_such_column FROM no_such_table']);
        expect(late).to.deep.equal(early);
        expect(errors).to.deep.equal(['SELECT no_such_column FROM no_such_table']);
      });

      it('keeps the password of the settings, which writers opening connections of their own read', () => {
        const settings = { host: '127.0.0.1', user: 'someone' };
        Object.defineProperty(settings, 'password', { value: 'secret', enumerable: false });
        (db.client as { connectionSettings: unknown }).connectionSettings = settings;
        const copied = (withQueryDeadline(db, 500).client as { connectionSettings: { password?: string; user?: string } }).connectionSettings;
        expect([copied.user, copied.password]).to.deep.equal(['someone', 'secret']);
      });
    });
  }
});
