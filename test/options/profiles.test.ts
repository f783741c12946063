import { expect } from 'chai';
import knex, { type Knex } from 'knex';
import { createKlingRelay, hostProfiles, type KlingRelayOptions } from '../../lib/index.js';
import { normalizeOptions } from '../../lib/options.js';
import { refused } from '../support/config-errors.js';
import { TEST_PRICING } from '../support/harness.js';

describe('profile, onTransition, channelId and the table write options', () => {
  let db: Knex;
  before(() => {
    db = knex({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true });
  });
  after(async () => db.destroy());

  const base = (): KlingRelayOptions => ({
    db,
    accounts: [{ id: 'a', accessKey: 'ak', secretKey: 'sk', channelId: 4 }],
    callbackUrl: 'https://relay.example.com/kling/callback',
    callbackSecret: 'x'.repeat(32),
    pricing: TEST_PRICING,
  });

  it("sets one-api's tables, users balance and billing where the host left them out", () => {
    const config = normalizeOptions({ ...base(), profile: 'one-api' });
    expect(config.billing).to.equal('charge-on-success');
    expect(config.tables.video).to.include({ name: 'videos', result: 'task', duration: 'text', failedQuota: 'estimate' });
    expect(config.tables.image).to.include({ name: 'images' });
    expect(config.quota).to.include({ table: 'users', quotaColumn: 'quota', usedColumn: 'used_quota' });
    expect(config.onTransition).to.be.a('function');
  });

  it("sets new-api's tasks table for both kinds, billing hold; the host's own options win", () => {
    const config = normalizeOptions({ ...base(), profile: 'new-api', billing: 'charge-on-success', tables: { image: { name: 'my_images' } } });
    expect(config.billing).to.equal('charge-on-success');
    expect(config.tables.video).to.include({ name: 'tasks', result: 'envelope', resultColumn: 'json' });
    expect(config.tables.image).to.deep.equal({ name: 'my_images' });
    expect(config.onTransition).to.equal(undefined);
  });

  it("exports each profile, frozen, for a host to build its own table options on", () => {
    const tasks = hostProfiles['new-api'].tables.video;
    expect(Object.isFrozen(tasks.extraColumns)).to.equal(true);
    expect(() => Object.assign(tasks, { name: 'other' })).to.throw(TypeError);
    const asKling = { ...tasks, extraColumns: { ...tasks.extraColumns, platform: { value: 'kling' } } };
    const config = normalizeOptions({ ...base(), profile: 'new-api', tables: { video: asKling, image: asKling } });
    expect(config.tables.video.extraColumns?.platform).to.deep.equal({ value: 'kling' });
    expect(config.tables.video.extraColumns?.progress).to.deep.equal(tasks.extraColumns?.progress);
    createKlingRelay({ ...base(), profile: 'new-api', tables: { video: asKling, image: asKling } }).close();
  });

  it('refuses an unknown profile and an onTransition that is not a function', () => {
    refused({ ...base(), profile: 'one_api' }, 'ERR_KLING_RELAY_OPTION_PROFILE', "'one-api' or 'new-api'", '"one_api"');
    refused({ ...base(), onTransition: 'log it' }, 'ERR_KLING_RELAY_OPTION_ON_TRANSITION', '(trx, change)');
  });

  it('refuses a channelId that is not a positive integer', () => {
    refused({ ...base(), accounts: [{ id: 'a', apiKey: 'k', channelId: '4' }] }, 'ERR_KLING_RELAY_ACCOUNTS', 'accounts[0].channelId', 'positive integer');
    refused({ ...base(), accounts: [{ id: 'a', apiKey: 'k', channelId: 1.5 }] }, 'ERR_KLING_RELAY_ACCOUNTS', 'accounts[0].channelId');
  });

  it('refuses table write options of the wrong shape, naming the option and what it takes', () => {
    const table = (video: Record<string, unknown>): unknown => ({ ...base(), tables: { video: { name: 'videos', ...video } } });
    const code = 'ERR_KLING_RELAY_HOST_TABLE';
    refused(table({ statuses: { done: 'DONE' } }), code, 'tables.video.statuses.done', 'pending, submitted, processing, succeed, failed');
    refused(table({ statuses: { succeed: 1 } }), code, 'tables.video.statuses.succeed', 'must be a string');
    refused(table({ result: 'whole' }), code, 'tables.video.result', "'task_result', 'task', 'envelope'");
    refused(table({ resultColumn: 'jsonb' }), code, 'tables.video.resultColumn');
    refused(table({ duration: 'float' }), code, 'tables.video.duration');
    refused(table({ failedQuota: 'keep' }), code, 'tables.video.failedQuota');
    refused(table({ extraColumns: { platform: 'kling' } }), code, 'tables.video.extraColumns.platform', '{ value:');
    refused(table({ extraColumns: { platform: { value: 'kling', from: 'now' } } }), code, 'exactly one of value, from and values');
    refused(table({ extraColumns: { started: { from: 'later' } } }), code, 'tables.video.extraColumns.started.from', "'now'");
    refused(table({ extraColumns: { started: { from: 'now', on: ['done'] } } }), code, 'tables.video.extraColumns.started.on');
    refused(table({ extraColumns: { progress: { values: { finished: '100%' } } } }), code, 'tables.video.extraColumns.progress.values.finished');
    refused(table({ extraColumns: { status: { value: 'x' } } }), code, 'tables.video.extraColumns.status', 'already mapped');
    refused(table({ extraColumns: { 'bad name;': { value: 'x' } } }), 'ERR_KLING_RELAY_IDENTIFIER');
  });
});
