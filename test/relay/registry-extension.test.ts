import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import type { Text2VideoRequest } from '../../lib/generated/index.js';
import { testDatabases } from '../support/databases.js';
import { startHarness, TEST_PRICING, type Harness } from '../support/harness.js';

/** An integrator adds an endpoint (a made-up Kling path) with a registry file and a schema: no code change. */
function integratorRegistry(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kling-integrator-'));
  writeFileSync(
    join(dir, 'voice-styles.json'),
    JSON.stringify({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: 'https://example.com/schemas/voice-styles.json',
      title: 'VoiceStyleRequest',
      type: 'object',
      properties: {
        voice_name: { type: 'string', minLength: 1, maxLength: 20 },
        voice_url: { $ref: 'https://kling-relay.dev/schemas/defs.json#/$defs/audio' },
        callback_url: { $ref: 'https://kling-relay.dev/schemas/defs.json#/$defs/callback_url' },
        external_task_id: { $ref: 'https://kling-relay.dev/schemas/defs.json#/$defs/external_task_id' },
      },
      required: ['voice_name', 'voice_url'],
      additionalProperties: false,
    }),
  );
  const file = join(dir, 'registry.json');
  writeFileSync(
    file,
    JSON.stringify({
      endpoints: [
        { path: '/v1/general/voice-styles', type: 'voice-style', schema: 'voice-styles.json', table: 'video', pricing_type: 'fixed', kind: 'task', default_model: 'kling-voice-style', queryable: true },
      ],
    }),
  );
  return file;
}

describe('an endpoint added by registry JSON alone', () => {
  const database = testDatabases()[0];
  let h: Harness;
  afterEach(async () => h.close());

  it('is validated, priced, recorded and relayed like a built-in one', async () => {
    if (!database) throw new Error('no database');
    h = await startHarness(database, {
      sandbox: { schedule: 'manual', endpoints: [{ path: '/v1/general/voice-styles', kind: 'task' }] },
      relay: { registry: integratorRegistry(), pricing: [...TEST_PRICING, { type: 'voice-style', pricing_type: 'fixed', price: 0.05 }] },
    });
    const user = await h.user(1_000_000);
    const bad = await request(h.url).post('/kling/v1/general/voice-styles').set('X-User-Id', String(user)).send({ voice_name: 'x'.repeat(21), voice_url: 'https://cdn.example.com/v.mp3' });
    expect([bad.status, bad.body.code]).to.deep.equal([400, 1201]);
    expect(bad.body.errors).to.deep.equal([{ path: '/voice_name', message: 'must be at most 20 characters' }]);

    const res = await request(h.url).post('/kling/v1/general/voice-styles').set('X-User-Id', String(user)).send({ voice_name: 'Narrator', voice_url: 'https://cdn.example.com/v.mp3' });
    expect(res.status).to.equal(200);
    expect(res.body.data.task_status).to.equal('submitted');
    const [row] = await h.rows('videos');
    expect(row).to.include({ type: 'voice-style', model: 'kling-voice-style', status: 'submitted' });
    expect(Number(row?.quota)).to.equal(25_000);
    expect(h.creates().map((r) => r.path)).to.deep.equal(['/v1/general/voice-styles']);

    // The built-in endpoints are still there, typed by the generated request types.
    const body: Text2VideoRequest = { prompt: 'a lighthouse in a storm', duration: '5' };
    const t2v = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send(body);
    expect(t2v.status).to.equal(200);
  });
});
