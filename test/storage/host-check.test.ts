import { expect } from 'chai';
import { silentLogger } from '../../lib/logger.js';
import { createKlingRelay, type KlingRelayOptions } from '../../lib/index.js';
import { createDefaultHostTables } from '../../adapters/host-schema.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, TEST_PRICING } from '../support/harness.js';
import { createMismatchedHostTables, dropHostTables, mismatchProblems } from '../support/host-tables.js';

function relayOptions(db: KlingRelayOptions['db']): KlingRelayOptions {
  return {
    db,
    accounts: [{ id: 'main', accessKey: 'ak', secretKey: 'sk-0123456789abcdef0123456789abcdef', baseUrl: 'http://127.0.0.1:9' }],
    callbackUrl: 'http://127.0.0.1:9/kling/callback',
    callbackSecret: CALLBACK_SECRET,
    pricing: TEST_PRICING,
    logger: silentLogger,
  };
}

for (const database of testDatabases()) {
  describe(`relay.checkHostTables() on ${database.name}`, () => {
    it('lists a missing mapped column, a BIGINT channel_id, a NOT NULL column the relay does not write, a JSON result and a text balance, each with its fix', async () => {
      const db = database.connect();
      try {
        await createMismatchedHostTables(db);
        const relay = createKlingRelay(relayOptions(db));
        const problems = await relay.checkHostTables();
        expect(problems.map((p) => [p.kind, p.table, p.column, p.option, p.message])).to.deep.equal(mismatchProblems(database.name));

        // The fixes the messages name: the mapped-away columns and a QuotaStore of the host's own leave the NOT NULL column.
        const fixed = createKlingRelay({
          ...relayOptions(db),
          tables: { video: { name: 'videos', columns: { channel_id: false, result: false, fail_reason: false } } },
          quota: { hold: async () => true, credit: async () => undefined, debit: async () => undefined, addUsed: async () => undefined, balance: async () => 0 },
        });
        expect((await fixed.checkHostTables()).map((p) => p.message)).to.deep.equal([mismatchProblems(database.name)[3]?.[4]]);
      } finally {
        await dropHostTables(db);
        await db.destroy();
      }
    });

    it('finds nothing wrong with the default tables, and names a missing table', async () => {
      const db = database.connect();
      try {
        await dropHostTables(db);
        await createDefaultHostTables(db);
        const relay = createKlingRelay(relayOptions(db));
        expect(await relay.checkHostTables()).to.deep.equal([]);
        await db.schema.dropTable('images');
        expect(await relay.checkHostTables()).to.deep.equal([
          {
            kind: 'missing-table',
            table: 'images',
            column: null,
            option: 'tables.image.name',
            message: "Table images does not exist: create it (kling-relay migrate --host-tables creates the default videos, images and users tables), or set tables.image.name to the host's table.",
          },
        ]);
      } finally {
        await dropHostTables(db);
        await db.destroy();
      }
    });
  });
}
