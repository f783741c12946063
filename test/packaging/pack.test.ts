import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHARED_MODULES = realpathSync(join(ROOT, 'node_modules'));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const TYPED_OPTIONS = `
import knex from 'knex';
import { createKlingRelay, type KlingRelayOptions, type Text2VideoRequest, type RelayEventMap } from 'kling-relay';

const options: KlingRelayOptions = {
  db: knex({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true }),
  accounts: [{ id: 'main', accessKey: 'ak', secretKey: 'sk' }],
  callbackUrl: 'https://relay.example.com/kling/callback',
  CALLBACK_SECRET_KEY: '0123456789abcdef0123456789abcdef',
  pricing: [{ type: 'text2video', pricing_type: 'per_second', price: 0.028 }],
  billing: 'hold',
};
const relay = createKlingRelay(options);
const doc: Record<string, unknown> = relay.openapi({ serverUrl: '/kling' });
relay.events.on('settled', (e: RelayEventMap['settled'][0]) => console.log(e.charge.toFixed(0), doc.openapi));
const body: Text2VideoRequest = { prompt: 'a lighthouse', duration: '5' };
console.log(body.prompt);
`;

/**
 * The package as an integrator gets it: `npm pack` (which builds through prepack), the tarball
 * unpacked into a fresh NodeNext TypeScript project's node_modules (its dependencies linked from the
 * shared install: no network), then typechecked, imported and its bin run.
 */
describe('the packed tarball in a fresh TypeScript NodeNext project', function () {
  this.timeout(240_000);
  let consumer: string;
  let tarball: string;

  before(async () => {
    const out = mkdtempSync(join(tmpdir(), 'kling-pack-'));
    const packed = await run('npm', ['pack', '--pack-destination', out, '--json'], ROOT);
    expect(packed.code, packed.stderr).to.equal(0);
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
    if (!info) throw new Error(`npm pack said nothing:\n${packed.stdout}`);
    tarball = join(out, info.filename);
    const files = info.files.map((f) => f.path);
    expect(files).to.include.members(['package.json', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/cli.js', 'schemas/registry.json', 'schemas/defs.json', 'examples/pricing.json', 'README.md']);
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('lib/') || f.endsWith('.ts') && !f.endsWith('.d.ts'))).to.deep.equal([]);

    consumer = mkdtempSync(join(tmpdir(), 'kling-consumer-'));
    const modules = join(consumer, 'node_modules');
    const own = join(modules, 'kling-relay');
    mkdirSync(own, { recursive: true });
    const untar = await run('tar', ['-xzf', tarball, '-C', own, '--strip-components=1'], consumer);
    expect(untar.code, untar.stderr).to.equal(0);
    for (const name of readdirSync(SHARED_MODULES)) {
      if (name === 'kling-relay' || name === '.bin' || name.startsWith('.')) continue;
      symlinkSync(join(SHARED_MODULES, name), join(modules, name));
    }
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    const compilerOptions = { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] };
    writeFileSync(join(consumer, 'good.ts'), TYPED_OPTIONS.replace('CALLBACK_SECRET_KEY', 'callbackSecret'));
    writeFileSync(join(consumer, 'bad.ts'), TYPED_OPTIONS.replace('CALLBACK_SECRET_KEY', 'callbackSecrett'));
    writeFileSync(join(consumer, 'tsconfig.good.json'), JSON.stringify({ compilerOptions, files: ['good.ts'] }));
    writeFileSync(join(consumer, 'tsconfig.bad.json'), JSON.stringify({ compilerOptions, files: ['bad.ts'] }));
  });

  const tsc = () => join(SHARED_MODULES, 'typescript', 'bin', 'tsc');

  it('typechecks a typed options object, and refuses a misspelt option naming the right one', async () => {
    const good = await run(process.execPath, [tsc(), '-p', 'tsconfig.good.json'], consumer);
    expect(good.code, good.stdout + good.stderr).to.equal(0);
    const bad = await run(process.execPath, [tsc(), '-p', 'tsconfig.bad.json'], consumer);
    expect(bad.code).to.not.equal(0);
    expect(bad.stdout).to.match(/bad\.ts\(\d+,\d+\): error TS2561: .*'callbackSecrett' does not exist in type 'KlingRelayOptions'\. Did you mean to write 'callbackSecret'\?/);
  });

  it('imports at runtime: the relay is created from the installed schemas and describes its routes', async () => {
    writeFileSync(
      join(consumer, 'run.mjs'),
      `import knex from 'knex';
import { createKlingRelay, startKlingSandbox } from 'kling-relay';
const db = knex({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true });
const relay = createKlingRelay({ db, accounts: [{ id: 'a', accessKey: 'ak', secretKey: 'sk' }], callbackUrl: 'https://x.example/cb', callbackSecret: 'x'.repeat(32), pricing: [{ price: 0.01 }] });
await relay.migrate();
const doc = relay.openapi();
const sandbox = await startKlingSandbox();
console.log(JSON.stringify({ openapi: doc.openapi, paths: ['/v1/videos/text2video', '/v1/tasks/{id}', '/openapi.json'].every((p) => p in doc.paths), sandbox: sandbox.url.startsWith('http://127.0.0.1:'), tables: await db.schema.hasTable('kling_relay_tasks') }));
await sandbox.close();
relay.close();
await db.destroy();
try { createKlingRelay({ db, pricing: [], callbackSecrett: 'x' }); } catch (e) { console.log(e.code); }
`,
    );
    const res = await run(process.execPath, ['run.mjs'], consumer);
    expect(res.code, res.stderr).to.equal(0);
    const [summary, code] = res.stdout.trim().split('\n');
    expect(JSON.parse(summary as string)).to.deep.equal({ openapi: '3.1.0', paths: true, sandbox: true, tables: true });
    expect(code).to.equal('ERR_KLING_RELAY_UNKNOWN_OPTION');
  });

  it("runs the tarball's bin: kling-relay --help", async () => {
    const pkg = JSON.parse(readFileSync(join(consumer, 'node_modules/kling-relay/package.json'), 'utf8')) as { bin: Record<string, string> };
    const bin = join(consumer, 'node_modules/kling-relay', pkg.bin['kling-relay'] as string);
    expect(readFileSync(bin, 'utf8').split('\n')[0]).to.equal('#!/usr/bin/env node');
    const help = await run(process.execPath, [bin, '--help'], consumer);
    expect(help.code, help.stderr).to.equal(0);
    expect(help.stdout).to.match(/^Usage: kling-relay <command>/);
    const check = await run(process.execPath, [bin, 'check', '--pricing', join(consumer, 'node_modules/kling-relay/examples/pricing.json')], consumer);
    expect(check.code, check.stderr).to.equal(0);
    expect(check.stdout).to.include('Every endpoint is priced.');
  });
});
