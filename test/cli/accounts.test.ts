import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AccountPacks } from '../../lib/index.js';
import { SANDBOX_PACK_UNITS } from '../../lib/sandbox/account.js';
import { startKlingSandbox, type KlingSandbox } from '../../lib/sandbox/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const KLING_ENV = ['KLING_API_KEY', 'KLING_ACCESS_KEY', 'KLING_SECRET_KEY', 'KLING_BASE_URL'];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const base = { ...process.env };
  for (const name of KLING_ENV) delete base[name];
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'lib/cli.ts'), ...args], { cwd: ROOT, env: { ...base, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('kling-relay accounts', function () {
  this.timeout(30_000);
  let sandbox: KlingSandbox;
  beforeEach(async () => {
    sandbox = await startKlingSandbox({ schedule: 'manual' });
  });
  afterEach(() => sandbox.close());

  it('prints each account\'s packs, and a bad key or Kling down as that account\'s error, exiting 1', async () => {
    const account = sandbox.accounts[0];
    if (!account) throw new Error('no sandbox account');
    const file = join(mkdtempSync(join(tmpdir(), 'kling-accounts-')), 'accounts.json');
    writeFileSync(file, JSON.stringify({
      accounts: [
        { id: 'main', accessKey: account.accessKey, secretKey: account.secretKey, baseUrl: sandbox.url },
        { id: 'typo', apiKey: 'not-a-key-kling-knows', baseUrl: sandbox.url },
        { id: 'down', apiKey: 'whatever', baseUrl: `http://127.0.0.1:${await closedPort()}` },
      ],
    }));
    const text = await cli(['accounts', '--accounts', file]);
    expect(text.code, text.stderr).to.equal(1);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).to.equal('Account main');
    expect(lines[1]).to.match(new RegExp(`^  Sandbox video pack \\(.+-pack-1, decreasing_total, online\\): ${SANDBOX_PACK_UNITS.video} of ${SANDBOX_PACK_UNITS.video} left, valid \\d{4}-\\d{2}-\\d{2} to \\d{4}-\\d{2}-\\d{2}$`));
    expect(lines.slice(4)).to.deep.equal([
      'Account typo',
      '  error: Kling answered HTTP 401 code 1002: Authorization is invalid',
      'Account down',
      lines[7],
    ]);
    expect(lines[7]).to.match(/^ {2}error: Kling call failed: .*ECONNREFUSED/);

    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const json = await cli(['accounts', '--accounts', file, '--json']);
    expect(json.code).to.equal(1);
    const reports = JSON.parse(json.stdout) as AccountPacks[];
    expect(reports.map((r) => r.account)).to.deep.equal(['main', 'typo', 'down']);
    expect(reports[0]?.packs?.map((p) => p.remaining)).to.deep.equal([SANDBOX_PACK_UNITS.video, SANDBOX_PACK_UNITS.image, SANDBOX_PACK_UNITS['try-on']]);
    expect(reports[1]?.error).to.deep.equal({ kind: 'kling', message: 'Kling answered HTTP 401 code 1002: Authorization is invalid', httpStatus: 401, klingCode: 1002 });
  });

  it('reads the account from the environment as the relay does, and exits 0 when every account is read', async () => {
    const run = await cli(['accounts', '--json'], { KLING_API_KEY: sandbox.accounts[0]?.apiKeys?.[0], KLING_BASE_URL: sandbox.url });
    expect(run.code, run.stderr).to.equal(0);
    const [report] = JSON.parse(run.stdout) as AccountPacks[];
    expect(report?.account).to.equal('default');
    expect(report?.packs).to.have.length(3);
    expect(sandbox.requests.map((r) => [r.method, r.path, r.headers.authorization])).to.deep.equal([['GET', '/account/costs', `Bearer ${sandbox.accounts[0]?.apiKeys?.[0]}`]]);
  });

  it('without an account, or with a file that is not a list of accounts, exits 1 naming the fix', async () => {
    const none = await cli(['accounts']);
    expect([none.code, none.stderr.trim()]).to.deep.equal([1, 'kling-relay accounts: ERR_KLING_RELAY_CLI_ACCOUNTS: No Kling account: give --accounts <file>, or set KLING_API_KEY (or KLING_ACCESS_KEY and KLING_SECRET_KEY) and KLING_BASE_URL as for the relay.']);
    const file = join(mkdtempSync(join(tmpdir(), 'kling-accounts-')), 'accounts.json');
    writeFileSync(file, '{"main": {}}');
    const bad = await cli(['accounts', '--accounts', file]);
    expect(bad.code).to.equal(1);
    expect(bad.stderr).to.include('ERR_KLING_RELAY_CLI_ACCOUNTS').and.include('No list of accounts');
    writeFileSync(file, '[{"id": "x"}]');
    const noKey = await cli(['accounts', '--accounts', file]);
    expect([noKey.code, noKey.stderr.trim()]).to.deep.equal([1, 'kling-relay accounts: ERR_KLING_RELAY_ACCOUNTS: accounts[0] (account "x") has no credentials: give apiKey, or accessKey and secretKey.']);
    expect(sandbox.requests).to.have.length(0);
  });
});
