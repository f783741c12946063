import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** One passing and one failing test: the failure's details are what a run prints last. */
const TINY_SUITE = `
describe('tiny', () => {
  it('passes', () => {});
  it('fails', () => { throw new Error('on purpose'); });
});
`;

function mocha(spec: string, env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const bin = join(ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js');
    execFile(process.execPath, [bin, spec], { cwd: ROOT, env }, (error, stdout) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout });
    });
  });
}

describe('npm test output (mocha with .mocharc)', function () {
  this.timeout(30_000);
  let dir: string;
  let spec: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kling-tiny-suite-'));
    spec = join(dir, 'tiny.test.ts');
    writeFileSync(spec, TINY_SUITE);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('repeats the skipped databases as the last line, after the failures, names the databases that ran, and says nothing when none is skipped', async () => {
    const env = { ...process.env };
    delete env.TEST_MYSQL_URL;
    delete env.TEST_PG_URL;
    const skipped = await mocha(spec, env);
    expect(skipped.code).to.equal(1);
    const lines = skipped.stdout.trimEnd().split('\n');
    const last = lines.at(-1)?.trim();
    expect(last).to.equal('Database suites ran on SQLite only. Skipped: MariaDB/MySQL (set TEST_MYSQL_URL); PostgreSQL (set TEST_PG_URL).');
    expect(skipped.stdout.lastIndexOf('on purpose')).to.be.lessThan(skipped.stdout.lastIndexOf(last as string));

    // The tiny suite opens no database: the URLs only need to be set.
    const one = await mocha(spec, { ...env, TEST_PG_URL: 'postgres://nobody@127.0.0.1:1/none' });
    expect(one.stdout.trimEnd().split('\n').at(-1)?.trim()).to.equal('Database suites ran on SQLite and PostgreSQL only. Skipped: MariaDB/MySQL (set TEST_MYSQL_URL).');
    expect(one.stdout).to.include('Database suites run on SQLite and PostgreSQL only. Skipped: MariaDB/MySQL (set TEST_MYSQL_URL).');

    const all = await mocha(spec, { ...env, TEST_MYSQL_URL: 'mysql://nobody@127.0.0.1:1/none', TEST_PG_URL: 'postgres://nobody@127.0.0.1:1/none' });
    expect(all.code).to.equal(1);
    expect(all.stdout).to.include('1 passing');
    expect(all.stdout).not.to.match(/Skipped:/);
  });
});
