import { expect } from 'chai';
import express from 'express';
import knex from 'knex';
import request from 'supertest';
import { createKlingRelay } from '../../lib/index.js';
import { silentLogger } from '../../lib/logger.js';
import { startKlingSandbox } from '../../lib/sandbox/index.js';
import { CALLBACK_SECRET, TEST_PRICING } from '../support/harness.js';

describe('relay with its database unreachable', () => {
  it('answers 503/5001 and Kling gets no POST', async () => {
    const sandbox = await startKlingSandbox({ schedule: 'manual' });
    // Nothing listens on port 1: every connection attempt is refused.
    const db = knex({ client: 'mysql2', connection: { host: '127.0.0.1', port: 1, user: 'root', database: 'none' }, acquireConnectionTimeout: 2_000, pool: { min: 0, max: 2 }, log: { error() {}, warn() {}, debug() {}, deprecate() {} } });
    const account = sandbox.accounts[0];
    if (!account) throw new Error('no account');
    const relay = createKlingRelay({
      db,
      accounts: [{ id: 'a', accessKey: account.accessKey, secretKey: account.secretKey, baseUrl: sandbox.url }],
      callbackUrl: 'http://127.0.0.1:9/kling/callback',
      callbackSecret: CALLBACK_SECRET,
      pricing: TEST_PRICING,
      logger: silentLogger,
    });
    const app = express();
    app.use('/kling', (_req, res, next) => {
      res.locals.user = { id: 1 };
      next();
    }, relay.router);
    try {
      const started = Date.now();
      const res = await request(app).post('/kling/v1/videos/text2video').send({ prompt: 'a kite' });
      expect([res.status, res.body.code, res.body.message]).to.deep.equal([503, 5001, 'service temporarily unavailable']);
      expect(Date.now() - started).to.be.lessThan(5_000);
      expect(sandbox.requests.filter((r) => r.method === 'POST')).to.deep.equal([]);
    } finally {
      relay.close();
      await sandbox.close();
      await db.destroy();
    }
  });
});
