import { expect } from 'chai';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import knex from 'knex';
import { knexConfigFor } from '../../lib/cli/migrate.js';
import { signKlingToken, startKlingSandbox } from '../../lib/sandbox/index.js';
import { createMismatchedHostTables, dropHostTables, mismatchProblems } from '../support/host-tables.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const READY_TIMEOUT_MS = 10_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI from the sources, as `kling-relay <args>` would from the built package. */
function cli(args: string[], cwd = ROOT): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'lib/cli.ts'), ...args], { cwd, env: cleanEnv() }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['KLING_API_KEY', 'KLING_ACCESS_KEY', 'KLING_SECRET_KEY', 'KLING_BASE_URL', 'KLING_CALLBACK_URL', 'KLING_CALLBACK_DOMAIN', 'KLING_CALLBACK_SECRET']) delete env[name];
  return env;
}

/** Starts a long-running command and resolves once its stdout matches `ready`. */
function startCli(args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; stdout: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'lib/cli.ts'), ...args], { cwd: ROOT, env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`not ready after ${READY_TIMEOUT_MS} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, READY_TIMEOUT_MS);
    const check = (): void => {
      if (!ready.test(stdout)) return;
      clearTimeout(timer);
      resolve({ child, stdout: () => stdout, exited });
    };
    child.stdout?.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ready\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    });
  });
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'kling-cli-'));
}

function integratorRegistry(dir: string, table = 'video'): string {
  writeFileSync(
    join(dir, 'voice-styles.json'),
    JSON.stringify({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: 'https://example.com/schemas/voice-styles.json',
      title: 'VoiceStyleRequest',
      type: 'object',
      properties: {
        model_name: { type: 'string', default: 'kling-voice-1' },
        voice_name: { type: 'string', minLength: 1, maxLength: 20, description: 'The voice name.' },
        voice_url: { $ref: 'https://kling-relay.dev/schemas/defs.json#/$defs/audio' },
      },
      required: ['voice_name', 'voice_url'],
      additionalProperties: false,
    }),
  );
  const file = join(dir, 'registry.json');
  writeFileSync(file, JSON.stringify({ endpoints: [{ path: '/v1/general/voice-styles', type: 'voice-style', schema: 'voice-styles.json', table, pricing_type: 'fixed', kind: 'task', fields: { model: 'model_name' }, queryable: true }] }));
  return file;
}

describe('kling-relay CLI', () => {
  it('prints its commands with --help, and refuses no command or an unknown one with exit 2', async () => {
    const help = await cli(['--help']);
    expect(help.code).to.equal(0);
    for (const command of ['migrate', 'check', 'serve', 'sandbox', 'gen-types']) expect(help.stdout).to.match(new RegExp(`^  ${command} `, 'm'));
    const none = await cli([]);
    expect(none.code).to.equal(2);
    const unknown = await cli(['migrat']);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.include("unknown command 'migrat'");
  });

  it('has --help on every command, and refuses unknown options and missing arguments with exit 2', async function () {
    // About 15 child processes, each starting tsx: 15 s on a loaded two-core machine.
    this.timeout(60_000);
    for (const command of ['migrate', 'check', 'serve', 'sandbox', 'gen-types']) {
      const res = await cli([command, '--help']);
      expect(res.code, command).to.equal(0);
      expect(res.stdout, command).to.match(new RegExp(`^Usage: kling-relay ${command}`));
    }
    const bad = await cli(['check', '--pricng', 'x.json']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include("Unknown option '--pricng'");
    const noDb = await cli(['migrate']);
    expect([noDb.code, noDb.stderr.split('\n')[0]]).to.deep.equal([2, 'kling-relay migrate: --db <url> is required']);
    const badPort = await cli(['sandbox', '--port', 'abc']);
    expect(badPort.code).to.equal(2);
    expect(badPort.stderr).to.include('--port must be a number from 0 to 65535');
  });

  describe('migrate', () => {
    it('creates the relay tables (and host tables when asked) in a SQLite file, idempotently', async () => {
      const file = join(tempDir(), 'host.sqlite');
      for (let i = 0; i < 2; i++) {
        const res = await cli(['migrate', '--db', file, '--host-tables']);
        expect(res.code, res.stderr).to.equal(0);
        expect(res.stdout).to.include('kling_relay_* tables are ready');
      }
      const db = knex({ client: 'better-sqlite3', connection: { filename: file }, useNullAsDefault: true });
      try {
        for (const table of ['kling_relay_tasks', 'kling_relay_ledger', 'kling_relay_resources', 'kling_relay_outbox', 'videos', 'images', 'users']) expect(await db.schema.hasTable(table), table).to.equal(true);
      } finally {
        await db.destroy();
      }
      const check = await cli(['check', '--db', file]);
      expect(check.code, check.stderr).to.equal(0);
      expect(check.stdout).to.include(`Host tables videos, images, users in ${file} fit the relay's writes.`);
    });

    for (const [name, variable] of [['MariaDB', 'TEST_MYSQL_URL'], ['PostgreSQL', 'TEST_PG_URL']] as const) {
      it(`creates the relay tables on ${name} from its URL, and never prints the password`, async function () {
        const url = process.env[variable];
        if (!url) this.skip();
        const db = knex({ client: variable === 'TEST_PG_URL' ? 'pg' : 'mysql2', connection: url });
        try {
          for (const table of ['kling_relay_ledger', 'kling_relay_tasks', 'kling_relay_resources', 'kling_relay_outbox']) await db.schema.dropTableIfExists(table);
          const res = await cli(['migrate', '--db', url]);
          expect(res.code, res.stderr).to.equal(0);
          const parsed = new URL(url);
          // A URL without a password (trust authentication) is printed as it is; one with a password, masked.
          if (parsed.password === '') expect(res.stdout).to.include(`${parsed.username}@${parsed.host}`);
          else {
            expect(res.stdout).to.include(`${parsed.username}:***@${parsed.host}`);
            expect(res.stdout).to.not.include(`:${parsed.password}@`);
          }
          for (const table of ['kling_relay_tasks', 'kling_relay_outbox']) expect(await db.schema.hasTable(table), table).to.equal(true);
        } finally {
          await db.destroy();
        }
      });
    }

    it('refuses an unknown scheme and an unreachable server with exit 1 and a clear message', async () => {
      const scheme = await cli(['migrate', '--db', 'redis://127.0.0.1:6379/0']);
      expect(scheme.code).to.equal(1);
      expect(scheme.stderr).to.include("ERR_KLING_RELAY_CLI_DB: Unsupported database URL scheme 'redis:'");
      const down = await cli(['migrate', '--db', 'postgres://someone:hunter2@127.0.0.1:1/nowhere']);
      expect(down.code).to.equal(1);
      expect(down.stderr).to.include('Cannot connect to postgres://someone:***@127.0.0.1:1/nowhere');
      expect(down.stderr).to.not.include('hunter2');
    });
  });

  describe('host tables', () => {
    const databases: ['sqlite' | 'mysql' | 'pg', () => string][] = [['sqlite', () => join(tempDir(), 'host.sqlite')]];
    if (process.env.TEST_MYSQL_URL) databases.push(['mysql', () => process.env.TEST_MYSQL_URL as string]);
    if (process.env.TEST_PG_URL) databases.push(['pg', () => process.env.TEST_PG_URL as string]);
    for (const [name, urlOf] of databases) {
      it(`check --db and migrate --host-tables name every problem of existing host tables and exit 1 (${name})`, async () => {
        const url = urlOf();
        const db = knex(knexConfigFor(url));
        try {
          await createMismatchedHostTables(db);
          const expected = [
            "ERR_KLING_RELAY_HOST_SCHEMA: The host tables do not fit the relay's writes (6 problems); submits fail until they are fixed:",
            ...mismatchProblems(name).map((p) => `  - ${p[4]}`),
          ];
          const check = await cli(['check', '--db', url]);
          expect(check.code).to.equal(1);
          expect(check.stderr.trimEnd().split('\n')).to.deep.equal([`kling-relay check: ${expected[0]}`, ...expected.slice(1)]);

          // migrate creates the images table it lacks, and checks only the tables it did not create.
          await db.schema.dropTable('images');
          const migrate = await cli(['migrate', '--db', url, '--host-tables']);
          expect(migrate.code).to.equal(1);
          expect(migrate.stdout).to.include('kling_relay_* tables are ready');
          expect(migrate.stderr.trimEnd().split('\n')).to.deep.equal([`kling-relay migrate: ${expected[0]}`, ...expected.slice(1)]);
          expect(await db.schema.hasTable('images')).to.equal(true);
        } finally {
          await dropHostTables(db);
          await db.destroy();
        }
      });
    }

    it('check --tables takes the mapping and quota options createKlingRelay takes', async () => {
      const dir = tempDir();
      const file = join(dir, 'host.sqlite');
      const db = knex(knexConfigFor(file));
      try {
        await createMismatchedHostTables(db);
      } finally {
        await db.destroy();
      }
      const tables = join(dir, 'tables.json');
      writeFileSync(tables, JSON.stringify({ tables: { video: { name: 'videos', columns: { channel_id: false, result: false, fail_reason: false } } }, quota: false }));
      const mapped = await cli(['check', '--db', file, '--tables', tables]);
      expect(mapped.code).to.equal(1);
      expect(mapped.stderr.trimEnd().split('\n')).to.deep.equal([
        "kling-relay check: ERR_KLING_RELAY_HOST_SCHEMA: The host tables do not fit the relay's writes (1 problem); submits fail until they are fixed:",
        `  - ${mismatchProblems('sqlite')[3]?.[4] ?? ''}`,
      ]);
      writeFileSync(tables, JSON.stringify({ tables: { vidoe: { name: 'videos' } } }));
      const bad = await cli(['check', '--db', file, '--tables', tables]);
      expect(bad.code).to.equal(1);
      expect(bad.stderr).to.include(`ERR_KLING_RELAY_CLI_TABLES: ${tables}: tables.vidoe is not a table; use video and image.`);
      const alone = await cli(['check', '--tables', tables]);
      expect([alone.code, alone.stderr.split('\n')[0]]).to.deep.equal([2, 'kling-relay check: --tables needs --db <url>']);
    });
  });

  describe('check', () => {
    it('prices a typical request of every endpoint and lists the unpriced ones', async () => {
      const full = await cli(['check', '--pricing', 'examples/pricing.json']);
      expect(full.code, full.stderr).to.equal(0);
      expect(full.stdout).to.match(/^47 endpoints; 116 pricing rules\./);
      // examples/pricing.json: text2video at 0.028 USD per second x the margin 1.25, 5 s by the schema's default duration.
      expect(full.stdout).to.match(/\/v1\/videos\/text2video\s+text2video\s+0\.175 USD\s+87500 quota\s+per_second \(model=kling-v1 mode=std 5s\)/);
      expect(full.stdout).to.match(/\/v1\/videos\/advanced-lip-sync\s+advanced-lip-sync\s+1\.05 USD\s+525000 quota\s+per_block \(model=kling-advanced-lip-sync 60s = 12 block\(s\)\)/);
      // The standard family's paths, priced by the path's model and settings.resolution.
      expect(full.stdout).to.match(/\/text-to-video\/kling-3\.0-turbo\s+text-to-video\s+0\.7 USD\s+350000 quota\s+per_second \(model=kling-3\.0-turbo mode=720p 5s\)/);
      expect(full.stdout).to.include('Every endpoint is priced.');

      const dir = tempDir();
      const pricing = join(dir, 'pricing.json');
      writeFileSync(pricing, JSON.stringify([{ model: 'kling-*', type: 'text2video', pricing_type: 'per_second', price: 0.028 }, { type: 'image-generation', pricing_type: 'per_image', price: 0.02 }]));
      const partial = await cli(['check', '--pricing', pricing]);
      expect(partial.code).to.equal(0);
      expect(partial.stdout).to.match(/\/v1\/images\/generations\s+image-generation\s+0\.02 USD\s+10000 quota\s+per_image \(model=kling-v3 1 image\(s\)\)/);
      expect(partial.stdout).to.include('No rule prices these 45 endpoint(s)');
      // A standard-family entry is priced by its path's model.
      expect(partial.stdout).to.match(/\/text-to-video\/kling-3\.0-turbo\s+text-to-video\s+no pricing rule for type 'text-to-video' and model 'kling-3\.0-turbo'/);
      expect(partial.stdout).to.match(/\/v1\/audio\/tts\s+tts\s+no pricing rule for type 'tts' and model 'kling-tts'/);
      const strict = await cli(['check', '--pricing', pricing, '--strict']);
      expect(strict.code).to.equal(1);
    });

    it("includes an integrator's registry entries, priced by its rules", async () => {
      const dir = tempDir();
      const registry = integratorRegistry(dir);
      const pricing = join(dir, 'pricing.json');
      writeFileSync(pricing, JSON.stringify([{ type: 'voice-style', model: 'kling-voice-*', pricing_type: 'fixed', price: 0.3 }]));
      const res = await cli(['check', '--registry', registry, '--pricing', pricing]);
      expect(res.code, res.stderr).to.equal(0);
      expect(res.stdout).to.match(/^48 endpoints/);
      expect(res.stdout).to.match(/\/v1\/general\/voice-styles\s+voice-style\s+0\.3 USD\s+150000 quota\s+fixed \(model=kling-voice-1\)/);
    });

    it('exits 1 with the coded error of an invalid pricing or registry file', async () => {
      const dir = tempDir();
      const pricing = join(dir, 'pricing.json');
      writeFileSync(pricing, JSON.stringify([{ modle: 'kling-*', price: 1 }]));
      const badPricing = await cli(['check', '--pricing', pricing]);
      expect(badPricing.code).to.equal(1);
      expect(badPricing.stderr).to.include("kling-relay check: ERR_KLING_RELAY_PRICING_INVALID: Invalid pricing file");
      expect(badPricing.stderr).to.include("unknown field 'modle'");
      const badRegistry = await cli(['check', '--registry', integratorRegistry(dir, 'audio')]);
      expect(badRegistry.code).to.equal(1);
      expect(badRegistry.stderr).to.include("ERR_KLING_RELAY_REGISTRY_TABLE: Registry");
      expect(badRegistry.stderr).to.include("use 'video' (video and audio endpoints) or 'image'");
      const missing = await cli(['check', '--pricing', join(dir, 'nope.json')]);
      expect(missing.code).to.equal(1);
      expect(missing.stderr).to.include('ERR_KLING_RELAY_PRICING_FILE');
    });
  });

  it('sandbox: serves Kling on the printed URL with the printed keys until SIGINT', async () => {
    const run = await startCli(['sandbox', '--port', '0', '--schedule', 'instant'], /Ctrl\+C stops it/);
    const out = run.stdout();
    const url = /KLING_BASE_URL=(\S+)/.exec(out)?.[1] as string;
    const accessKey = /KLING_ACCESS_KEY=(\S+)/.exec(out)?.[1] as string;
    const secretKey = /KLING_SECRET_KEY=(\S+)/.exec(out)?.[1] as string;
    const token = await signKlingToken({ accessKey, secretKey });
    const created = await fetch(`${url}/v1/videos/text2video`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ prompt: 'a kite' }) });
    const body = (await created.json()) as { code: number; data: { task_id: string } };
    expect(body.code).to.equal(0);
    const wrong = await fetch(`${url}/v1/videos/text2video/${body.data.task_id}`, { headers: { Authorization: 'Bearer nope' } });
    expect(wrong.status).to.equal(401);
    const apiKey = /KLING_API_KEY=(\S+)/.exec(out)?.[1];
    expect(apiKey, 'the printed API key').to.be.a('string');
    const byKey = await fetch(`${url}/v1/videos/text2video/${body.data.task_id}`, { headers: { Authorization: `Bearer ${String(apiKey)}` } });
    expect(byKey.status, 'the API key reaches the same account').to.equal(200);
    run.child.kill('SIGINT');
    expect(await run.exited).to.equal(0);
  });

  it('serve: runs the demo host from lib, answering with the printed token, until SIGINT', async () => {
    const dir = tempDir();
    const run = await startCli(['serve', '--port', '0', '--dir', dir], /Ctrl\+C stops the demo/);
    const base = /kling-relay demo ready on (\S+)/.exec(run.stdout())?.[1] as string;
    const token = /^\s+token\s+(\S+)$/m.exec(run.stdout())?.[1] as string;
    const res = await fetch(`${base}/kling/v1/videos/text2video`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ prompt: 'a kite', duration: '5' }) });
    const body = (await res.json()) as { code: number; data: { task_status: string } };
    expect([res.status, body.code, body.data.task_status]).to.deep.equal([200, 0, 'submitted']);
    const doc = await fetch(`${base}/kling/openapi.json`, { headers: { Authorization: `Bearer ${token}` } });
    expect(((await doc.json()) as { servers: { url: string }[] }).servers[0]?.url).to.equal('/kling');
    run.child.kill('SIGINT');
    expect(await run.exited).to.equal(0);
  });

  it('serve: with KLING_API_KEY and KLING_BASE_URL, submits to that Kling with the API key as the Bearer credential', async () => {
    const apiKey = 'serve-api-key-0123456789abcdef';
    const kling = await startKlingSandbox({ schedule: 'manual', accounts: [{ accessKey: 'ak-serve', secretKey: 'sk-serve-0123456789abcdef', apiKeys: [apiKey] }] });
    try {
      const run = await startCli(['serve', '--port', '0', '--dir', tempDir()], /Ctrl\+C stops the demo/, { KLING_API_KEY: apiKey, KLING_BASE_URL: kling.url });
      const base = /kling-relay demo ready on (\S+)/.exec(run.stdout())?.[1] as string;
      const token = /^\s+token\s+(\S+)$/m.exec(run.stdout())?.[1] as string;
      const res = await fetch(`${base}/kling/v1/videos/text2video`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ prompt: 'a kite', duration: '5' }) });
      expect(res.status).to.equal(200);
      expect(kling.requests.map((r) => [r.method, r.path, r.headers.authorization, r.accessKey])).to.deep.equal([['POST', '/v1/videos/text2video', `Bearer ${apiKey}`, 'ak-serve']]);
      expect(run.stdout()).to.not.include(apiKey);
      run.child.kill('SIGINT');
      expect(await run.exited).to.equal(0);
    } finally {
      await kling.close();
    }
  });

  it("gen-types: writes request types for an integrator's entries, the shared defs included, without fetching", async () => {
    const dir = tempDir();
    const out = join(dir, 'types');
    const res = await cli(['gen-types', '--registry', integratorRegistry(dir), '--out', out]);
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.include('wrote general-voice-styles.ts, index.ts');
    const ts = readFileSync(join(out, 'general-voice-styles.ts'), 'utf8');
    expect(ts).to.match(/export interface VoiceStyleRequest \{/);
    expect(ts).to.match(/voice_name: string;/);
    expect(ts).to.match(/voice_url: KlingDefsAudio;/);
    expect(ts).to.match(/export type KlingDefsAudio = string;/);
    expect(readFileSync(join(out, 'index.ts'), 'utf8')).to.include("'/v1/general/voice-styles': VoiceStyleRequest;");
    const missing = await cli(['gen-types', '--registry', join(dir, 'registry.json')]);
    expect([missing.code, missing.stderr.split('\n')[0]]).to.deep.equal([2, 'kling-relay gen-types: --out <dir> is required']);
  });

  it("gen-types: names the file of a standard-family entry after its path, as the built-in types are", async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'acme.json'),
      JSON.stringify({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        $id: 'https://example.com/schemas/acme.json',
        title: 'AcmeTextToVideoRequest',
        type: 'object',
        properties: { prompt: { type: 'string', minLength: 1 }, options: { $ref: 'https://kling-relay.dev/schemas/defs.json#/$defs/standard_options' } },
        required: ['prompt'],
        additionalProperties: false,
      }),
    );
    const registry = join(dir, 'registry.json');
    writeFileSync(registry, JSON.stringify({ endpoints: [{ path: '/text-to-video/acme-1.0', family: 'standard', type: 'text-to-video', schema: 'acme.json', table: 'video', pricing_type: 'fixed', kind: 'task', default_model: 'acme-1.0', queryable: true }] }));
    const out = join(dir, 'types');
    const res = await cli(['gen-types', '--registry', registry, '--out', out]);
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.include('wrote text-to-video-acme-1.0.ts, index.ts');
    expect(readFileSync(join(out, 'text-to-video-acme-1.0.ts'), 'utf8')).to.match(/export interface AcmeTextToVideoRequest \{/);
    expect(readFileSync(join(out, 'index.ts'), 'utf8')).to.include("import type { AcmeTextToVideoRequest } from './text-to-video-acme-1.0.js';");
  });
});
