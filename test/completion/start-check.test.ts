import { expect } from 'chai';
import sinon from 'sinon';
import { createKlingRelay, type KlingRelay } from '../../lib/index.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, TEST_PRICING } from '../support/harness.js';
import { createDefaultHostTables } from '../../adapters/host-schema.js';
import { createMismatchedHostTables, dropHostTables, mismatchProblems } from '../support/host-tables.js';

const RELAY_TABLES = ['kling_relay_tasks', 'kling_relay_ledger', 'kling_relay_resources', 'kling_relay_outbox'];

for (const database of testDatabases()) {
  describe(`relay.start() on ${database.name}`, function () {
    it('logs an error naming the relay tables that are missing (a host that upgraded without migrate), and none once they are there', async () => {
      const db = database.connect();
      const relays: KlingRelay[] = [];
      try {
        for (const table of [...RELAY_TABLES].reverse()) await db.schema.dropTableIfExists(table);
        await dropHostTables(db);
        await createDefaultHostTables(db);
        const logger = { error: sinon.spy(), warn: sinon.spy(), info: sinon.spy(), debug: sinon.spy() };
        const make = () => {
          const relay = createKlingRelay({
            db,
            accounts: [{ id: 'a', accessKey: 'ak', secretKey: 'sk-0123456789abcdef0123456789abcdef', baseUrl: 'http://127.0.0.1:9' }],
            callbackUrl: 'http://127.0.0.1:9/kling/callback',
            callbackSecret: CALLBACK_SECRET,
            pricing: TEST_PRICING,
            logger,
            reconciler: { intervalMs: 600_000 },
          });
          relays.push(relay);
          return relay;
        };
        const missingErrors = () => logger.error.getCalls().filter((c) => /run relay\.migrate\(\)/.test(String(c.args[0])));
        const bare = make();
        bare.start();
        for (let i = 0; i < 100 && missingErrors().length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        expect(missingErrors()).to.have.length(1);
        expect(missingErrors()[0]?.args[1]).to.deep.equal({ missing: RELAY_TABLES });
        await bare.stop();

        const migrated = make();
        await migrated.migrate();
        migrated.start();
        // The check is one query per table; give it the time it needs, then look again.
        await new Promise((resolve) => setTimeout(resolve, 300));
        await migrated.stop();
        expect(missingErrors()).to.have.length(1);
        expect(logger.error.callCount).to.equal(1);
      } finally {
        for (const relay of relays) relay.close();
        for (const table of [...RELAY_TABLES].reverse()) await db.schema.dropTableIfExists(table);
        await dropHostTables(db);
        await db.destroy();
      }
    });

    it('logs one error naming every problem of the host tables, and keeps running', async () => {
      const db = database.connect();
      const logger = { error: sinon.spy(), warn: sinon.spy(), info: sinon.spy(), debug: sinon.spy() };
      const relay = createKlingRelay({
        db,
        accounts: [{ id: 'main', accessKey: 'ak', secretKey: 'sk-0123456789abcdef0123456789abcdef', baseUrl: 'http://127.0.0.1:9' }],
        callbackUrl: 'http://127.0.0.1:9/kling/callback',
        callbackSecret: CALLBACK_SECRET,
        pricing: TEST_PRICING,
        logger,
        reconciler: { intervalMs: 600_000 },
      });
      try {
        await createMismatchedHostTables(db);
        await relay.migrate();
        relay.start();
        for (let i = 0; i < 100 && logger.error.callCount === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        expect(logger.error.callCount).to.equal(1);
        expect(logger.error.firstCall.args[0]).to.equal("the host tables do not fit the relay's writes: submits fail until they are fixed (relay.checkHostTables() lists the problems)");
        expect(logger.error.firstCall.args[1]).to.deep.equal({ code: 'ERR_KLING_RELAY_HOST_SCHEMA', problems: mismatchProblems(database.name).map((p) => p[4]) });
        // The relay keeps running: a pass still works.
        expect(await relay.reconcile()).to.be.an('object');
        await relay.stop();
      } finally {
        relay.close();
        for (const table of [...RELAY_TABLES].reverse()) await db.schema.dropTableIfExists(table);
        await dropHostTables(db);
        await db.destroy();
      }
    });
  });
}
