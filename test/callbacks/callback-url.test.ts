import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { buildOpenApi } from '../../lib/openapi.js';
import { builtinRegistryPath } from '../../lib/paths.js';
import { loadRegistry } from '../../lib/registry/load.js';
import { callbackUrlProblem } from '../../lib/validation/keywords.js';

const registryFile = builtinRegistryPath();
const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

/** Every `callback_url` property anywhere in a schema, with its JSON path. */
function callbackUrlProperties(node: unknown, path: string, found: [string, Record<string, unknown>][] = []): [string, Record<string, unknown>][] {
  if (typeof node !== 'object' || node === null) return found;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'properties' && typeof value === 'object' && value !== null && 'callback_url' in value) {
      found.push([`${path}/properties/callback_url`, (value as Record<string, Record<string, unknown>>).callback_url ?? {}]);
    }
    callbackUrlProperties(value, `${path}/${key}`, found);
  }
  return found;
}

describe('callback_url in the endpoint schemas', () => {
  it('every built-in endpoint that accepts callback_url refers to $defs/callback_url, which uses klingCallbackUrl', () => {
    const registry = readJson(registryFile) as { endpoints: { path: string; schema: string; kind?: string }[] };
    let accepting = 0;
    for (const entry of registry.endpoints) {
      const schema = readJson(join(dirname(registryFile), entry.schema));
      for (const [path, property] of callbackUrlProperties(schema, entry.schema)) {
        accepting++;
        expect(property.$ref, `${entry.path} ${path}`).to.equal('../defs.json#/$defs/callback_url');
        expect(Object.keys(property).filter((k) => k !== '$ref' && k !== 'description'), `${entry.path} ${path} adds nothing that loosens or tightens the shared rule`).to.deep.equal([]);
      }
    }
    expect(accepting).to.be.at.least(18);
    const defs = readJson(join(dirname(registryFile), 'defs.json')) as { $defs: Record<string, Record<string, unknown>> };
    expect(defs.$defs.callback_url).to.include({ type: 'string', maxLength: 2048, klingCallbackUrl: true });
  });

  it('keeps absolute http(s) URLs with a host, refuses the rest with a message saying why', () => {
    for (const url of ['https://client.example.com/hook', 'http://client.example.com', 'HTTPS://Client.Example.com:8443/a?b=c#d', 'https://[2001:db8::1]/hook', 'https://203.0.113.7/hook', 'https://client.example.com/hook?sig=a@b']) {
      expect(callbackUrlProblem(url), url).to.equal(undefined);
    }
    const refused: [string, RegExp][] = [
      ['http://u:p@client.example.com/', /credentials/],
      ['http://u@client.example.com/', /credentials/],
      ['http://:p@client.example.com/', /credentials/],
      ['/relative/hook', /absolute http/],
      ['//client.example.com/hook', /absolute http/],
      ['ftp://client.example.com/hook', /absolute http/],
      ['javascript:alert(1)', /absolute http/],
      ['data:text/plain,hi', /absolute http/],
      ['http:/client.example.com', /absolute http/],
      ['http://', /absolute http/],
      ['http://client.example.com\\@evil.example.com', /backslash/],
      ['http://client.example.com/\r\nX-Injected: 1', /control characters/],
      [' https://client.example.com/', /spaces/],
      ['https://client.example.com/\t', /control characters/],
    ];
    for (const [url, message] of refused) expect(callbackUrlProblem(url), JSON.stringify(url)).to.match(message);
  });

  it('the OpenAPI document describes the notice as a callback of the submits that take callback_url', () => {
    const doc = buildOpenApi(loadRegistry(undefined)) as { paths: Record<string, { post?: { callbacks?: Record<string, Record<string, { post: { requestBody: unknown; parameters: { name: string }[] } }>> } }> };
    const notice = doc.paths['/v1/videos/text2video']?.post?.callbacks?.clientCallback?.['{$request.body#/callback_url}']?.post;
    expect(notice?.requestBody).to.deep.equal({ required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/KlingTask' } } } });
    expect(notice?.parameters.map((p) => p.name)).to.deep.equal(['webhook-id', 'webhook-timestamp', 'webhook-signature']);
    expect(doc.paths['/v1/images/generations']?.post?.callbacks).to.have.property('clientCallback');
    // tts takes no callback_url; identify-face answers at once.
    expect(doc.paths['/v1/audio/tts']?.post).to.not.have.property('callbacks');
    expect(doc.paths['/v1/videos/identify-face']?.post).to.not.have.property('callbacks');
  });
});
