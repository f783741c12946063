import { expect } from 'chai';
import type { Knex } from 'knex';
import { silentLogger } from '../../lib/logger.js';
import { createKlingRelay, type KlingRelayOptions } from '../../lib/index.js';
import { NEW_API_TABLES, ONE_API_TABLES, createAppTables, dropAppTables } from '../fixtures/app-schemas.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, TEST_PRICING } from '../support/harness.js';

function relayOptions(db: Knex, options: Partial<KlingRelayOptions>): KlingRelayOptions {
  return {
    db,
    accounts: [{ id: 'main', accessKey: 'ak', secretKey: 'sk-0123456789abcdef0123456789abcdef', baseUrl: 'http://127.0.0.1:9', channelId: 1 }],
    callbackUrl: 'http://127.0.0.1:9/kling/callback',
    callbackSecret: CALLBACK_SECRET,
    pricing: TEST_PRICING,
    logger: silentLogger,
    ...options,
  };
}

const problemsOf = async (db: Knex, options: Partial<KlingRelayOptions>): Promise<[string, string, string | null, string | null][]> =>
  (await createKlingRelay(relayOptions(db, options)).checkHostTables()).map((p) => [p.kind, p.table, p.column, p.option]);

for (const database of testDatabases()) {
  describe(`relay.checkHostTables() on the applications' own tables, on ${database.name}`, () => {
    let db: Knex;
    beforeEach(() => {
      db = database.connect();
    });
    afterEach(async () => {
      await dropAppTables(db, { ...ONE_API_TABLES, ...NEW_API_TABLES });
      await db.destroy();
    });

    it("names one-api's integer channel_id when an account has no channelId", async () => {
      await createAppTables(db, database.name, ONE_API_TABLES);
      expect(await problemsOf(db, { profile: 'one-api' })).to.deep.equal([]);
      const noChannel = [{ id: 'main', apiKey: 'key', baseUrl: 'http://127.0.0.1:9' }];
      expect(await problemsOf(db, { profile: 'one-api', accounts: noChannel })).to.deep.equal([
        ['type', 'videos', 'channel_id', 'tables.video.columns.channel_id'],
        ['type', 'images', 'channel_id', 'tables.image.columns.channel_id'],
      ]);
    });

    it("names new-api's JSON data column when the table writes '' into it, and extra columns that are missing or of another type", async () => {
      await createAppTables(db, database.name, NEW_API_TABLES);
      expect(await problemsOf(db, { profile: 'new-api' })).to.deep.equal([]);
      const tasks = {
        name: 'tasks',
        columns: { type: 'action', result: 'data', username: false, model: false, provider: false, mode: false, duration: false },
        extraColumns: { platform: { value: 'kling' }, queue: { value: 'default' }, start_time: { value: 'soon' } },
      } as const;
      expect(await problemsOf(db, { tables: { video: tasks, image: tasks } })).to.deep.equal([
        ['json', 'tasks', 'data', 'tables.video.columns.result'],
        ['missing-column', 'tasks', 'queue', 'tables.video.extraColumns.queue'],
        ['type', 'tasks', 'start_time', 'tables.video.extraColumns.start_time'],
        ['json', 'tasks', 'data', 'tables.image.columns.result'],
        ['missing-column', 'tasks', 'queue', 'tables.image.extraColumns.queue'],
        ['type', 'tasks', 'start_time', 'tables.image.extraColumns.start_time'],
      ]);
    });
  });
}
