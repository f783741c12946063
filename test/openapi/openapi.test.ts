import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { CUSTOM_KEYWORDS } from '../../lib/validation/keywords.js';
import { loadRegistry } from '../../lib/registry/load.js';
import { testDatabases } from '../support/databases.js';
import { startHarness, TEST_PRICING, type Harness } from '../support/harness.js';

type Json = Record<string, unknown>;

/** An integrator's endpoint, added by a registry file and a schema that uses the shared defs and a custom keyword. */
function integratorRegistry(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kling-openapi-'));
  writeFileSync(
    join(dir, 'voice-notes.json'),
    JSON.stringify({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: 'https://example.com/schemas/voice-notes.json',
      title: 'VoiceNoteRequest',
      type: 'object',
      properties: {
        voice_name: { type: 'string', minLength: 1, maxLength: 20, errorMessage: 'a name of 1 to 20 characters' },
        voice_url: { $ref: 'https://kling-relay.dev/schemas/defs.json#/$defs/audio' },
        external_task_id: { $ref: 'https://kling-relay.dev/schemas/defs.json#/$defs/external_task_id' },
      },
      required: ['voice_name', 'voice_url'],
      additionalProperties: false,
    }),
  );
  const file = join(dir, 'registry.json');
  writeFileSync(file, JSON.stringify({ endpoints: [{ path: '/v1/general/voice-notes', type: 'voice-note', schema: 'voice-notes.json', table: 'video', pricing_type: 'fixed', kind: 'task', queryable: true }] }));
  return file;
}

async function validateDocument(doc: Json): Promise<Validator> {
  const validator = new Validator();
  const result = await validator.validate(doc);
  expect(result.errors, JSON.stringify(result.errors, null, 1)?.slice(0, 2000)).to.equal(undefined);
  expect(result.valid).to.equal(true);
  expect(validator.version).to.equal('3.1');
  return validator;
}

/** Every `$ref` in the document, with where it is. */
function refs(value: unknown, at = ''): [string, string][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => refs(v, `${at}/${i}`));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value as Json).flatMap(([k, v]) => (k === '$ref' && typeof v === 'string' ? [[at, v] as [string, string]] : refs(v, `${at}/${k}`)));
}

function resolvePointer(doc: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = doc;
  for (const part of ref.slice(2).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Json)[part];
  }
  return node;
}

function keysDeep(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(keysDeep);
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value as Json).flatMap(([k, v]) => [k, ...keysDeep(v)]);
}

describe('OpenAPI document', () => {
  const database = testDatabases()[0];
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('is a valid OpenAPI 3.1 document listing every registry route, the queries and the error table', async () => {
    if (!database) throw new Error('no database');
    h = await startHarness(database);
    const doc = h.relay.openapi({ serverUrl: 'https://api.example.com/kling' });
    await validateDocument(doc);
    expect(doc.openapi).to.equal('3.1.0');
    expect(doc.servers).to.deep.equal([{ url: 'https://api.example.com/kling', description: 'Where the host mounts the relay.' }]);

    const paths = doc.paths as Record<string, Record<string, Json>>;
    const registry = loadRegistry(undefined);
    expect(registry.entries.length).to.be.greaterThan(20);
    // The standard family: a POST per create path with its schema as the body and Kling's create answer
    // of that family, the caller's callback at options.callback_url, and its queries through /tasks.
    for (const entry of registry.entries.filter((e) => e.family === 'standard')) {
      const post = paths[entry.path]?.post;
      expect(Object.keys(paths[entry.path] ?? {}), entry.path).to.deep.equal(['post']);
      const body = resolvePointer(doc, (post?.requestBody as { $ref: string }).$ref) as { content: Record<string, { schema: Json }> };
      const schema = body.content['application/json']?.schema as { properties: Json };
      expect(Object.keys(schema.properties), entry.path).to.include.members(['settings', 'options']);
      expect(post?.tags, entry.path).to.deep.equal([entry.path.split('/')[1]]);
      const ok = (post?.responses as Record<string, Json>)['200'] as { content: Record<string, { schema: Json }> };
      expect(ok.content['application/json']?.schema, entry.path).to.deep.equal({ $ref: '#/components/schemas/StandardSubmitEnvelope' });
      expect(Object.keys(post?.responses as Json)).to.include.members(['400', '401', '402', '413', '415', '429', '502', '503', '504']);
      expect(Object.keys((post?.callbacks as Json).clientCallback as Json), entry.path).to.deep.equal(['{$request.body#/options/callback_url}']);
    }
    const submitted = ((doc.components as Json).schemas as Record<string, { properties: Json }>).StandardTaskSubmitted;
    expect(Object.keys(submitted?.properties ?? {})).to.deep.equal(['id', 'status', 'create_time', 'update_time', 'external_id']);
    const tasks = paths['/tasks'] as Record<string, Json>;
    expect((tasks.get?.parameters as { name: string; in: string }[]).map((p) => [p.name, p.in])).to.deep.equal([['task_ids', 'query'], ['external_task_ids', 'query']]);
    const listed = ((tasks.get?.responses as Record<string, Json>)['200'] as { content: Record<string, { schema: Json }> }).content['application/json']?.schema;
    expect(listed).to.deep.equal({ $ref: '#/components/schemas/StandardTaskListEnvelope' });
    const listing = resolvePointer(doc, (tasks.post?.requestBody as { $ref: string }).$ref) as { content: Record<string, { schema: { properties: Json } }> };
    expect(Object.keys(listing.content['application/json']?.schema.properties ?? {})).to.deep.equal(['start_time', 'end_time', 'cursor', 'limit', 'filters']);
    const page = ((tasks.post?.responses as Record<string, Json>)['200'] as { content: Record<string, { schema: Json }> }).content['application/json']?.schema;
    expect(page).to.deep.equal({ $ref: '#/components/schemas/StandardTaskPageEnvelope' });
    const pageData = resolvePointer(doc, '#/components/schemas/StandardTaskPageEnvelope/properties/data') as { required: string[] };
    expect(pageData.required).to.deep.equal(['result', 'count', 'next_cursor', 'has_more']);
    for (const entry of registry.entries.filter((e) => e.family === 'v1')) {
      if (entry.method === 'GET') {
        // A preset list: a GET whose query parameters are its schema's properties, and no POST.
        const call = paths[entry.path]?.get;
        expect(paths[entry.path]?.post, entry.path).to.equal(undefined);
        expect((call?.parameters as { name: string; in: string }[]).map((p) => [p.name, p.in]), entry.path).to.deep.equal([['pageNum', 'query'], ['pageSize', 'query']]);
        expect(Object.keys(call?.responses as Json)).to.include.members(['200', '400', '401', '402', '502', '503']);
        continue;
      }
      const post = paths[entry.path]?.post;
      expect(post, entry.path).to.not.equal(undefined);
      const bodyRef = (post?.requestBody as { $ref: string }).$ref;
      const body = resolvePointer(doc, bodyRef) as { required: boolean; content: Record<string, { schema: Json }> };
      expect(body.required, bodyRef).to.equal(true);
      const schema = body.content['application/json']?.schema;
      expect(schema?.type, `${entry.path} request schema`).to.equal('object');
      const responses = post?.responses as Json;
      expect(Object.keys(responses)).to.include.members(['200', '400', '401', '402', '404', '413', '415', '429', '502', '503', '504']);
      if (entry.queryable) {
        expect(paths[entry.path]?.get?.parameters, entry.path).to.deep.include({ name: 'pageNum', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 1 } });
        expect(paths[`${entry.path}/{id}`]?.get, entry.path).to.not.equal(undefined);
      } else {
        expect(paths[`${entry.path}/{id}`], entry.path).to.equal(undefined);
      }
    }
    expect(paths['/v1/tasks/{id}']?.get).to.not.equal(undefined);
    expect(paths['/openapi.json']?.get).to.not.equal(undefined);

    // The relay's error table (ERROR_TABLE), in the description and in the responses.
    const description = (doc.info as Json).description as string;
    for (const row of ['| 402 | 1102 |', '| 429 | 1302, 1303 |', '| 503 | 5001 |', '| 504 | 5002 |', '| 413 | 1200 |']) expect(description).to.include(row);
    const responses = (doc.components as Json).responses as Record<string, Json>;
    expect(responses.Error429?.headers).to.have.property('Retry-After');

    // No relay-only keyword is left as a schema keyword, and every $ref points inside the document.
    const keys = new Set(keysDeep(doc.components));
    for (const keyword of CUSTOM_KEYWORDS) expect(keys.has(keyword), keyword).to.equal(false);
    expect(keys.has('x-klingMedia')).to.equal(true);
    expect(keys.has('$id')).to.equal(false);
    for (const [at, ref] of refs(doc)) expect(resolvePointer(doc, ref), `${at} -> ${ref}`).to.not.equal(undefined);
  });

  it('keeps the request schemas working: the text2video schema from the document accepts and refuses what the relay does', async () => {
    if (!database) throw new Error('no database');
    h = await startHarness(database);
    const validator = await validateDocument(h.relay.openapi());
    const resolved = validator.resolveRefs() as Json;
    const post = (resolved.paths as Record<string, Record<string, Json>>)['/v1/videos/text2video']?.post as Json;
    const schema = ((post.requestBody as Json).content as Record<string, { schema: Json }>)['application/json']?.schema as Json;
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats.default(ajv);
    const check = ajv.compile(schema);
    expect(check({ prompt: 'a lighthouse in a storm', duration: '5', mode: 'pro' }), JSON.stringify(check.errors)).to.equal(true);
    expect(check({ prompt: 'a lighthouse in a storm', duration: '2' })).to.equal(false);
    expect(check({ duration: '5', mode: 'fast' })).to.equal(false);
    const live = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(await h.user(1_000_000))).send({ prompt: 'a lighthouse', duration: '2' });
    expect([live.status, live.body.code]).to.deep.equal([400, 1201]);
  });

  it('is served at GET <mount>/openapi.json with the mount as server, and includes an endpoint added by JSON', async () => {
    if (!database) throw new Error('no database');
    h = await startHarness(database, {
      sandbox: { schedule: 'manual', endpoints: [{ path: '/v1/general/voice-notes', kind: 'task' }] },
      relay: { registry: integratorRegistry(), pricing: [...TEST_PRICING, { type: 'voice-note', pricing_type: 'fixed', price: 0.05 }] },
    });
    const res = await request(h.url).get('/kling/openapi.json');
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.match(/^application\/json/);
    const doc = res.body as Json;
    await validateDocument(doc);
    expect(doc.servers).to.deep.equal([{ url: '/kling', description: 'Where the host mounts the relay.' }]);
    const paths = doc.paths as Record<string, Record<string, Json>>;
    const post = paths['/v1/general/voice-notes']?.post as Json;
    expect(post['x-kling-relay']).to.deep.equal({ type: 'voice-note', table: 'video', pricing_type: 'fixed', kind: 'task' });
    const schemas = (doc.components as Json).schemas as Record<string, Json>;
    expect(post.requestBody).to.deep.equal({ $ref: '#/components/requestBodies/VoiceNoteRequest' });
    const bodies = (doc.components as Json).requestBodies as Record<string, { content: Record<string, { schema: Json }> }>;
    const custom = bodies.VoiceNoteRequest?.content['application/json']?.schema as { properties: Record<string, Json> };
    expect(custom.properties.voice_name).to.deep.equal({ type: 'string', minLength: 1, maxLength: 20, 'x-errorMessage': 'a name of 1 to 20 characters' });
    expect(custom.properties.voice_url).to.deep.equal({ $ref: '#/components/schemas/KlingDefs_audio' });
    expect(schemas.KlingDefs_audio).to.have.property('x-klingMedia');
    expect(paths['/v1/general/voice-notes/{id}']?.get).to.not.equal(undefined);
  });
});
