import { expect } from 'chai';
import type { Knex } from 'knex';
import { RelayStore } from '../../adapters/index.js';
import type { NewRelayTask } from '../../adapters/index.js';
import { testDatabases } from '../support/databases.js';
import { newTask } from '../support/tasks.js';

/** Task n of the lookups: a finished task with ids that name it. */
function task(n: number, overrides: Partial<NewRelayTask> = {}): NewRelayTask {
  return newTask({
    external_task_id: `kr-video-${n}-lookup`,
    client_task_id: `client-${n}`,
    kling_task_id: `kling-${n}`,
    host_row_id: String(n),
    user_id: 'heavy',
    state: 'succeed',
    charge_quota: 100,
    created_at: 1_700_000_000_000 + n,
    updated_at: 1_700_000_000_000 + n,
    ...overrides,
  });
}

interface Captured {
  sql: string;
  bindings: readonly unknown[];
}

/** The statements `run` sends, as knex reports them. */
async function capture(db: Knex, run: () => Promise<unknown>): Promise<Captured[]> {
  const captured: Captured[] = [];
  const listener = (query: { sql: string; bindings?: readonly unknown[] }): void => void captured.push({ sql: query.sql, bindings: query.bindings ?? [] });
  db.on('query', listener);
  try {
    await run();
  } finally {
    db.removeListener('query', listener);
  }
  return captured;
}

/** The database's plan of one captured statement, one line per step. */
async function plan(db: Knex, name: string, query: Captured): Promise<string[]> {
  // knex reports PostgreSQL's statements with $n placeholders; knex.raw takes ?.
  const sql = name === 'pg' ? query.sql.replace(/\$\d+/g, '?') : query.sql;
  const result: unknown = await db.raw(`${name === 'sqlite' ? 'EXPLAIN QUERY PLAN' : 'EXPLAIN'} ${sql}`, query.bindings as Knex.RawBinding[]);
  if (name === 'sqlite') return (result as { detail: string }[]).map((row) => row.detail);
  if (name === 'pg') return (result as { rows: { 'QUERY PLAN': string }[] }).rows.map((row) => row['QUERY PLAN']);
  return (result as [{ table: string; type: string; key: string | null; ref: string | null; Extra: string | null }[]])[0].map((row) => `${row.table} ${row.type} key=${String(row.key)} ref=${String(row.ref)} extra=${String(row.Extra)}`);
}

for (const database of testDatabases()) {
  describe(`task lookups and earlier tables on ${database.name}`, function () {
    this.timeout(60_000);
    let db: Knex;
    const store = new RelayStore();

    beforeEach(async () => {
      db = database.connect();
      for (const table of Object.values(store.tables)) await db.schema.dropTableIfExists(table);
      await store.migrate(db);
    });
    afterEach(async () => db.destroy());

    it("looks a caller's task up through an index naming the task, not a walk over the caller's tasks", async () => {
      // A heavy caller among a few others; statistics only where the planner needs them to pick any index.
      const rows = Array.from({ length: 3000 }, (_, i) => task(i, { user_id: i % 10 === 0 ? `other-${i % 7}` : 'heavy' }));
      for (let i = 0; i < rows.length; i += 200) await db(store.tables.tasks).insert(rows.slice(i, i + 200));
      if (database.name === 'pg') await db.raw('ANALYZE ??', [store.tables.tasks]);
      if (database.name === 'mysql') await db.raw('ANALYZE TABLE ??', [store.tables.tasks]);

      for (const [id, endpoint] of [['kling-2001', undefined], ['client-2001', undefined], ['kling-2001', '/v1/videos/text2video']] as const) {
        let found: unknown;
        const queries = await capture(db, async () => void (found = await store.findForUser(db, 'heavy', id, endpoint)));
        expect((found as { host_row_id?: string } | undefined)?.host_row_id, id).to.equal('2001');
        expect(queries.length).to.be.greaterThan(0);
        for (const query of queries) {
          const steps = (await plan(db, database.name, query)).join('\n');
          if (database.name === 'sqlite') {
            // The relay's own external_task_id is unique: its index names the task by itself.
            expect(steps, query.sql).to.match(/SEARCH \S+ USING INDEX \S+ \(user_id=\? AND (kling_task_id|client_task_id)=\?\)|SEARCH \S+ USING INDEX \S+tasks_external_id \(external_task_id=\?\)/);
            expect(steps, query.sql).to.not.match(/MULTI-INDEX|SCAN \S+tasks/);
          } else if (database.name === 'pg') {
            expect(steps, query.sql).to.match(/Index Scan using kling_relay_tasks_(user_kling|client_once|kling_id|external_id) /);
            expect(steps, query.sql).to.not.match(/Seq Scan|tasks_user_list/);
          } else {
            // A lookup on the unique (user_id, client_task_id) key that matches nothing is answered from the
            // key itself: MariaDB reports "Impossible WHERE noticed after reading const tables" (or "no matching row").
            expect(steps, query.sql).to.match(/ (ref|const) key=kling_relay_tasks_(user_kling|client_once|kling_id|external_id) |extra=(no matching row in const table|Impossible WHERE noticed after reading const tables)/);
          }
        }
      }
    });

    it("counts a caller's active tasks through the (user_id, state) index, not a walk over the caller's history", async () => {
      const rows = Array.from({ length: 3000 }, (_, i) => task(i, { user_id: i % 10 === 0 ? `other-${i % 7}` : 'heavy', state: i % 500 === 1 ? 'processing' : 'succeed' }));
      for (let i = 0; i < rows.length; i += 200) await db(store.tables.tasks).insert(rows.slice(i, i + 200));
      if (database.name === 'pg') await db.raw('ANALYZE ??', [store.tables.tasks]);
      if (database.name === 'mysql') await db.raw('ANALYZE TABLE ??', [store.tables.tasks]);
      let count = -1;
      const [query] = await capture(db, async () => void (count = await store.activeCount(db, 'heavy')));
      expect(count).to.equal(6);
      const steps = (await plan(db, database.name, query as Captured)).join('\n');
      if (database.name === 'sqlite') expect(steps).to.match(/SEARCH \S+ USING (COVERING )?INDEX kling_relay_tasks_user_state \(user_id=\? AND state=\?\)/);
      // PostgreSQL may read the active tasks of every caller by state instead: few, whatever the history.
      else if (database.name === 'pg') expect(steps, steps).to.match(/(Index Only Scan|Index Scan|Bitmap Index Scan) (using|on) kling_relay_tasks_(user_state|due)/).and.not.match(/Seq Scan|tasks_user_list/);
      else expect(steps).to.match(/ (range|ref) key=kling_relay_tasks_user_state /);
    });

    it("brings an earlier version's tables up to date: exact id comparisons, the resources' owner, the lookup index", async () => {
      // The tables as an earlier version left them: no owner column, no (user_id, kling_task_id)
      // index, and on MariaDB the database's default collation, which folds case, accents and spaces.
      await db.schema.alterTable(store.tables.tasks, (t) => void t.dropIndex(['user_id', 'kling_task_id'], 'kling_relay_tasks_user_kling'));
      await db.schema.alterTable(store.tables.resources, (t) => void t.dropColumn('user_id'));
      if (database.name === 'mysql') {
        for (const table of [store.tables.tasks, store.tables.ledger, store.tables.resources]) await db.raw('ALTER TABLE ?? CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci', [table]);
      }
      await db(store.tables.tasks).insert(task(1, { user_id: 'alice', client_task_id: 'Mine-1' }));
      await store.addLedger(db, { task_id: 1, user_id: 'alice', kind: 'hold', amount: -100 });
      await db(store.tables.resources).insert({ resource_id: 'Video-1', kind: 'video', account_id: 'acct-a', created_at: 1 });
      if (database.name === 'mysql') expect((await store.findForUser(db, 'ALICE', 'kling-1'))?.user_id, 'the old collation folds case').to.equal('alice');

      await store.migrate(db);
      await store.migrate(db);

      for (const caller of ['ALICE', 'Alice', 'alice ', 'alíce']) {
        expect(await store.findForUser(db, caller, 'kling-1'), caller).to.equal(undefined);
        expect(await store.listForUser(db, caller, '/v1/videos/text2video', 1, 10), caller).to.deep.equal([]);
        expect(await store.ledgerSum(db, caller), caller).to.equal(0);
      }
      for (const id of ['MINE-1', 'Mine-1 ', 'Míne-1']) expect(await store.findForUser(db, 'alice', id), id).to.equal(undefined);
      expect((await store.findForUser(db, 'alice', 'Mine-1'))?.kling_task_id).to.equal('kling-1');
      expect(await store.ledgerSum(db, 'alice')).to.equal(-100);
      // The resource recorded before the owner column serves every caller; one recorded now, its owner only.
      expect(await store.accountForResources(db, ['Video-1'], 'bob')).to.deep.equal({ account: 'acct-a', foreign: undefined });
      expect(await store.accountForResources(db, ['video-1', 'VIDEO-1 '], 'bob')).to.deep.equal({ account: undefined, foreign: undefined });
      await store.recordResource(db, 'Video-2', 'video', 'acct-b', 'alice');
      expect(await store.accountForResources(db, ['Video-2'], 'Alice')).to.deep.equal({ account: 'acct-b', foreign: 'Video-2' });
      expect(await db.schema.hasColumn(store.tables.resources, 'user_id')).to.equal(true);
    });
  });
}
