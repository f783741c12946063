import { expect } from 'chai';
import knex from 'knex';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkDatabase } from '../../lib/cli/check.js';
import { ONE_API_TABLES, createAppTables } from '../fixtures/app-schemas.js';

// `kling-relay check --db <file> --tables <file>` with {"profile": "one-api"}: one-api's own tables
// are judged as the profile writes them, with integer channel ids.
describe('kling-relay check --tables with a profile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kling-relay-profile-'));
  const database = join(dir, 'one-api.sqlite');
  const tablesFile = (content: unknown): string => {
    const file = join(dir, `tables-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(content));
    return file;
  };

  before(async () => {
    const db = knex({ client: 'better-sqlite3', connection: { filename: database }, useNullAsDefault: true });
    await createAppTables(db, 'sqlite', ONE_API_TABLES);
    await db.destroy();
  });

  it("passes one-api's tables under profile 'one-api'", async () => {
    expect(await checkDatabase(database, tablesFile({ profile: 'one-api' }))).to.equal(`Host tables videos, images, users in ${database} fit the relay's writes.`);
  });

  it('names the integer channel_id when the file says the accounts carry no channelId', async () => {
    let caught: unknown;
    try {
      await checkDatabase(database, tablesFile({ profile: 'one-api', channelIds: false }));
    } catch (error) {
      caught = error;
    }
    expect((caught as { code?: string }).code).to.equal('ERR_KLING_RELAY_HOST_SCHEMA');
    expect((caught as Error).message).to.include('videos.channel_id').and.include('images.channel_id');
  });

  it('refuses an unknown profile in the file', async () => {
    let caught: unknown;
    try {
      await checkDatabase(database, tablesFile({ profile: 'two-api' }));
    } catch (error) {
      caught = error;
    }
    expect((caught as { code?: string }).code).to.equal('ERR_KLING_RELAY_CLI_TABLES');
    expect((caught as Error).message).to.include("'one-api' or 'new-api'");
  });
});
