import { expect } from 'chai';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KlingRelayConfigError } from '../../lib/errors.js';
import { loadRegistry } from '../../lib/registry/load.js';
import type { RegistryEntryJson } from '../../lib/registry/types.js';
import { createValidator } from '../../lib/validation/index.js';
import { PNG_400x300, dataUrl } from '../fixtures/media.js';

const EXPECTED_PATHS = [
  'videos/text2video', 'videos/image2video', 'videos/omni-video', 'videos/multi-image2video', 'videos/motion-control',
  'videos/video-extend', 'videos/identify-face', 'videos/advanced-lip-sync', 'videos/lip-sync',
  'videos/multi-elements/init-selection', 'videos/multi-elements/add-selection', 'videos/multi-elements/delete-selection',
  'videos/multi-elements/clear-selection', 'videos/multi-elements/preview-selection', 'videos/multi-elements',
  'videos/avatar/image2video', 'videos/effects', 'videos/image-recognize', 'audio/text-to-audio', 'audio/video-to-audio',
  'audio/tts', 'images/generations', 'images/omni-image', 'images/multi-image2image', 'images/editing/expand',
  'images/kolors-virtual-try-on', 'general/custom-voices', 'general/presets-voices', 'general/delete-voices',
  'general/advanced-custom-elements', 'general/advanced-presets-elements', 'general/delete-advanced-elements',
  'general/delete-elements', 'general/custom-elements', 'general/ai-multi-shot',
].map((p) => `/v1/${p}`);

/** Kling's standard family: the model is the path's last segment. */
const STANDARD_PATHS = [
  'text-to-video/kling-3.0-turbo', 'image-to-video/kling-3.0-turbo', 'text-to-video/kling-3.0', 'image-to-video/kling-3.0',
  'omni-video/kling-3.0-omni', 'motion-control/kling-3.0', 'omni-video/kling-o1', 'text-to-video/kling-2.6', 'image-to-video/kling-2.6',
  'motion-control/kling-2.6', 'text-to-video/kling-2.5-turbo', 'image-to-video/kling-2.5-turbo',
].map((p) => `/${p}`);

const ALL_PATHS = [...EXPECTED_PATHS, ...STANDARD_PATHS];

/** The request types of seed 004 section 3.1, so that pricing written for the seed works unchanged. */
const SEED_TYPES: Record<string, [string, string]> = {
  '/v1/videos/motion-control': ['motion-control', 'per_second'],
  '/v1/videos/multi-elements/init-selection': ['multi-elements', 'fixed'],
  '/v1/videos/video-extend': ['video-extend', 'per_second'],
  '/v1/videos/avatar/image2video': ['avatar-image2video', 'per_second'],
  '/v1/videos/effects': ['video-effects', 'fixed'],
  '/v1/videos/image-recognize': ['image-recognize', 'fixed'],
  '/v1/audio/text-to-audio': ['text-to-audio', 'per_second'],
  '/v1/audio/video-to-audio': ['video-to-audio', 'fixed'],
  '/v1/audio/tts': ['tts', 'per_second'],
  '/v1/images/generations': ['image-generation', 'fixed'],
  '/v1/images/omni-image': ['omni-image', 'fixed'],
  '/v1/images/multi-image2image': ['multi-image2image', 'fixed'],
  '/v1/images/editing/expand': ['image-expand', 'fixed'],
};

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'kling-relay-registry-'));
}

function entry(overrides: Partial<RegistryEntryJson> = {}): RegistryEntryJson {
  return { path: '/v1/videos/custom', type: 'custom', schema: 'custom.json', table: 'video', pricing_type: 'fixed', kind: 'task', queryable: true, ...overrides };
}

const SIMPLE_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://example.com/schemas/custom.json',
  title: 'CustomRequest',
  type: 'object',
  properties: { prompt: { type: 'string', maxLength: 10 } },
  required: ['prompt'],
  additionalProperties: false,
};

function registryWith(entries: RegistryEntryJson[], schemas: Record<string, unknown> = { 'custom.json': SIMPLE_SCHEMA }): string {
  const dir = tempDir();
  for (const [name, schema] of Object.entries(schemas)) writeFileSync(join(dir, name), typeof schema === 'string' ? schema : JSON.stringify(schema));
  const file = join(dir, 'registry.json');
  writeFileSync(file, JSON.stringify({ endpoints: entries }));
  return file;
}

function expectConfigError(fn: () => unknown, code: string, ...fragments: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected ${code}`).to.be.instanceOf(KlingRelayConfigError);
  const error = caught as KlingRelayConfigError;
  expect(error.code).to.equal(code);
  for (const fragment of fragments) expect(error.message).to.include(fragment);
}

describe('registry', () => {
  const registry = loadRegistry(undefined);

  it('has exactly one entry for every Kling endpoint, matched by exact path', () => {
    expect(registry.entries.map((e) => e.path).sort()).to.deep.equal([...ALL_PATHS].sort());
    // The seed's substring matching sent /videos/avatar/image2video to image2video; exact paths do not.
    expect(registry.byPath.get('/v1/videos/avatar/image2video')?.type).to.equal('avatar-image2video');
    expect(registry.byPath.get('/v1/videos/image2video')?.type).to.equal('image2video');
    expect(registry.byPath.get('/v1/videos/multi-elements')?.type).to.not.equal(registry.byPath.get('/v1/videos/multi-elements/init-selection')?.type);
  });

  it("keeps seed 004's request types and pricing types for its 13 endpoints", () => {
    for (const [path, [type, pricing]] of Object.entries(SEED_TYPES)) {
      const e = registry.byPath.get(path);
      expect(e?.type, path).to.equal(type);
      expect(e?.pricingType, path).to.equal(pricing);
    }
  });

  it('sends image endpoints (and AI multi-shot, which makes images) to the image table, the others to the video table', () => {
    for (const e of registry.entries) expect(e.table, e.path).to.equal(e.path.startsWith('/v1/images/') || e.path === '/v1/general/ai-multi-shot' ? 'image' : 'video');
  });

  it('serves the preset lists with GET and everything else with POST', () => {
    const gets = registry.entries.filter((e) => e.method === 'GET').map((e) => e.path).sort();
    expect(gets).to.deep.equal(['/v1/general/advanced-presets-elements', '/v1/general/presets-voices']);
    for (const e of registry.entries) expect(e.method, e.path).to.be.oneOf(['GET', 'POST']);
  });

  it('prices the other video generators per second', () => {
    for (const path of ['/v1/videos/text2video', '/v1/videos/image2video', '/v1/videos/omni-video', '/v1/videos/multi-image2video', '/v1/videos/multi-elements']) {
      expect(registry.byPath.get(path)?.pricingType, path).to.equal('per_second');
    }
  });

  it('marks the synchronous endpoints sync and not queryable', () => {
    const sync = registry.entries.filter((e) => e.kind === 'sync').map((e) => e.path).sort();
    expect(sync).to.deep.equal(
      ['/v1/videos/identify-face', '/v1/videos/image-recognize', '/v1/audio/tts', '/v1/videos/multi-elements/init-selection',
        '/v1/videos/multi-elements/add-selection', '/v1/videos/multi-elements/delete-selection',
        '/v1/videos/multi-elements/clear-selection', '/v1/videos/multi-elements/preview-selection', '/v1/general/presets-voices',
        '/v1/general/delete-voices', '/v1/general/advanced-presets-elements', '/v1/general/delete-advanced-elements',
        '/v1/general/delete-elements', '/v1/general/custom-elements'].sort(),
    );
    for (const e of registry.entries) expect(e.queryable, e.path).to.equal(e.kind === 'task');
  });

  it('says which family each entry belongs to: v1 by default, standard for the paths that name their model', () => {
    for (const path of EXPECTED_PATHS) expect(registry.byPath.get(path)?.family, path).to.equal('v1');
    for (const path of STANDARD_PATHS) {
      const e = registry.byPath.get(path);
      expect(e?.family, path).to.equal('standard');
      // The model is the path's: it is what the host row records and pricing matches.
      expect(e?.defaultModel, path).to.equal(path.split('/')[2]);
      expect(e?.type, path).to.equal(path.split('/')[1]);
      expect(e?.fields, path).to.include({ mode: 'settings.resolution' });
      expect(e?.fields.duration ?? `${e?.defaultSeconds ?? ''} s`, path).to.equal(path.startsWith('/motion-control/') ? '30 s' : 'settings.duration');
      expect([e?.kind, e?.queryable, e?.table, e?.pricingType], path).to.deep.equal(['task', true, 'video', 'per_second']);
    }
    expect(registry.byPath.get('/image-to-video/kling-3.0')?.refersTo).to.deep.equal(['contents[].element_id']);
    expect(registry.byPath.get('/image-to-video/kling-2.6')?.refersTo).to.deep.equal(['contents[].voice_id']);
  });

  it('compiles every built-in schema in strict mode', () => {
    expect(() => createValidator(registry)).to.not.throw();
  });

  describe('an integrator adds an endpoint by JSON alone', () => {
    it('from a registry file next to its schema: validated, with the built-in keywords available', () => {
      const schema = {
        ...SIMPLE_SCHEMA,
        properties: { prompt: { type: 'string', maxLength: 10 }, image: { $ref: 'https://kling-relay.dev/schemas/defs.json#/$defs/image' } },
      };
      const file = registryWith([entry({ path: '/v1/videos/custom', type: 'custom-video' })], { 'custom.json': schema });
      const merged = loadRegistry(file);
      expect(merged.entries).to.have.length(ALL_PATHS.length + 1);
      const validator = createValidator(merged);
      const ok = validator.validate('/v1/videos/custom', { prompt: 'hi', image: dataUrl('image/png', PNG_400x300) });
      expect(ok).to.deep.equal({ ok: true, body: { prompt: 'hi', image: PNG_400x300 } });
      const bad = validator.validate('/v1/videos/custom', { prompt: 'far too long a prompt' });
      expect(bad).to.deep.equal({ ok: false, errors: [{ path: '/prompt', message: 'must be at most 10 characters' }] });
    });

    it('overrides a built-in path with its own entry', () => {
      const file = registryWith([entry({ path: '/v1/videos/text2video', type: 'my-t2v' })]);
      const merged = loadRegistry(file);
      expect(merged.entries).to.have.length(ALL_PATHS.length);
      expect(merged.byPath.get('/v1/videos/text2video')?.type).to.equal('my-t2v');
      expect(createValidator(merged).validate('/v1/videos/text2video', { prompt: 'x' }).ok).to.equal(true);
    });

    it('as an object in options.registry, schema paths relative to the working directory', () => {
      const dir = tempDir();
      mkdirSync(join(dir, 's'));
      writeFileSync(join(dir, 's', 'c.json'), JSON.stringify(SIMPLE_SCHEMA));
      const cwd = process.cwd();
      process.chdir(dir);
      try {
        const merged = loadRegistry({ endpoints: [entry({ schema: 's/c.json' })] });
        expect(merged.byPath.get('/v1/videos/custom')?.schemaFile).to.equal(join(dir, 's', 'c.json'));
      } finally {
        process.chdir(cwd);
      }
    });
  });

  describe('refuses a bad registry with a coded error naming the entry and the fix', () => {
    it('a duplicate path', () => {
      const file = registryWith([entry(), entry()]);
      expectConfigError(() => loadRegistry(file), 'ERR_KLING_RELAY_REGISTRY_DUPLICATE_PATH', "'/v1/videos/custom'", 'appears twice');
    });

    it('a missing schema file', () => {
      const file = registryWith([entry({ schema: 'nowhere.json' })]);
      expectConfigError(() => loadRegistry(file), 'ERR_KLING_RELAY_SCHEMA_MISSING', "entry '/v1/videos/custom'", 'nowhere.json');
    });

    it('a schema file that is not JSON', () => {
      const file = registryWith([entry()], { 'custom.json': '{ not json' });
      expectConfigError(() => loadRegistry(file), 'ERR_KLING_RELAY_SCHEMA_MISSING', 'not valid JSON');
    });

    it('an unknown table', () => {
      const file = registryWith([entry({ table: 'audio' as never })]);
      expectConfigError(() => loadRegistry(file), 'ERR_KLING_RELAY_REGISTRY_TABLE', "entry '/v1/videos/custom'", "'video'", "'image'");
    });

    it('an unknown pricing type', () => {
      const file = registryWith([entry({ pricing_type: 'per_token' as never })]);
      expectConfigError(() => loadRegistry(file), 'ERR_KLING_RELAY_REGISTRY_PRICING_TYPE', "entry '/v1/videos/custom'", 'per_second');
    });

    it('an unknown method, and a GET entry with a task list', () => {
      expectConfigError(() => loadRegistry(registryWith([entry({ method: 'PUT' as never })])), 'ERR_KLING_RELAY_REGISTRY_INVALID', "entry '/v1/videos/custom'", "'POST'", "'GET'");
      expectConfigError(() => loadRegistry(registryWith([entry({ method: 'GET', kind: 'sync', queryable: true })])), 'ERR_KLING_RELAY_REGISTRY_INVALID', 'queryable is false');
      expect(loadRegistry(registryWith([entry({ method: 'GET', kind: 'sync', queryable: false })])).byPath.get('/v1/videos/custom')?.method).to.equal('GET');
      expect(loadRegistry(registryWith([entry()])).byPath.get('/v1/videos/custom')?.method).to.equal('POST');
    });

    it('a missing field and an unknown field', () => {
      const { kind: _kind, ...noKind } = entry();
      expectConfigError(() => loadRegistry(registryWith([noKind as RegistryEntryJson])), 'ERR_KLING_RELAY_REGISTRY_INVALID', "missing field 'kind'");
      expectConfigError(() => loadRegistry(registryWith([{ ...entry(), price: 1 } as RegistryEntryJson])), 'ERR_KLING_RELAY_REGISTRY_INVALID', "unknown field 'price'");
    });

    it('a path that is not an exact Kling path', () => {
      expectConfigError(() => loadRegistry(registryWith([entry({ path: 'videos/*' })])), 'ERR_KLING_RELAY_REGISTRY_INVALID', 'exact Kling path');
    });

    it('a switch field that is neither a path nor {path, on} with values', () => {
      const at = (sound: unknown) => registryWith([entry({ fields: { sound } as never })]);
      expectConfigError(() => loadRegistry(at({ path: 'settings.audio', on: [] })), 'ERR_KLING_RELAY_REGISTRY_INVALID', "entry '/v1/videos/custom'", '/fields/sound');
      expectConfigError(() => loadRegistry(at({ path: 'settings.audio' })), 'ERR_KLING_RELAY_REGISTRY_INVALID', '/fields/sound');
      expectConfigError(() => loadRegistry(at({ path: 'contents[].type', on: ['video'], when: 'x' })), 'ERR_KLING_RELAY_REGISTRY_INVALID', '/fields/sound');
      expectConfigError(() => loadRegistry(at('contents[].type')), 'ERR_KLING_RELAY_REGISTRY_INVALID', '/fields/sound');
      expect(loadRegistry(at({ path: 'contents[].type', on: ['video'] })).byPath.get('/v1/videos/custom')?.fields.sound).to.deep.equal({ path: 'contents[].type', on: ['video'] });
    });

    it('a path of the other family', () => {
      // A v1 path has no model in it; a standard path is /<product>/<model>, never under /v1.
      expectConfigError(() => loadRegistry(registryWith([entry({ path: '/text-to-video/kling-3.0' })])), 'ERR_KLING_RELAY_REGISTRY_INVALID', "entry '/text-to-video/kling-3.0'", 'exact Kling path');
      expectConfigError(() => loadRegistry(registryWith([entry({ path: '/v1/videos/kling-3.0', family: 'standard' })])), 'ERR_KLING_RELAY_REGISTRY_INVALID', "family 'standard'");
      expectConfigError(() => loadRegistry(registryWith([entry({ path: '/text-to-video/a/b', family: 'standard' })])), 'ERR_KLING_RELAY_REGISTRY_INVALID', 'exact Kling path');
      expectConfigError(() => loadRegistry(registryWith([entry({ family: 'v2' as never })])), 'ERR_KLING_RELAY_REGISTRY_INVALID', "entry '/v1/videos/custom'", 'family');
      expect(loadRegistry(registryWith([entry({ path: '/text-to-video/kling-9', family: 'standard' })])).byPath.get('/text-to-video/kling-9')?.family).to.equal('standard');
    });

    it('an unknown custom keyword in a schema', () => {
      const file = registryWith([entry()], { 'custom.json': { ...SIMPLE_SCHEMA, properties: { prompt: { type: 'string', klingMagic: true } } } });
      expectConfigError(() => createValidator(loadRegistry(file)), 'ERR_KLING_RELAY_UNKNOWN_KEYWORD', "'klingMagic'", "entry '/v1/videos/custom'", 'klingMedia');
    });

    it('a bad value for a custom keyword', () => {
      const file = registryWith([entry()], { 'custom.json': { ...SIMPLE_SCHEMA, properties: { prompt: { type: 'string', klingMedia: 'hologram' } } } });
      expectConfigError(() => createValidator(loadRegistry(file)), 'ERR_KLING_RELAY_SCHEMA_INVALID', "entry '/v1/videos/custom'", 'klingMedia');
    });

    it('a missing registry file', () => {
      expectConfigError(() => loadRegistry('/no/such/registry.json'), 'ERR_KLING_RELAY_REGISTRY_MISSING', '/no/such/registry.json');
    });
  });
});
