import { expect } from 'chai';
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * A fresh clone as a newcomer has it: the repository's files (the working tree's, so that changes not
 * yet committed are what is tested), the dependencies installed (linked from the shared install) and
 * nothing built: no dist/.
 */
function freshClone(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kling-clone-'));
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
  for (const file of listed.split('\0')) {
    if (!file || !existsSync(join(ROOT, file))) continue;
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    copyFileSync(join(ROOT, file), join(dir, file));
  }
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(dir, 'node_modules'));
  return dir;
}

describe('npx kling-relay in a fresh clone', function () {
  // npx links the clone into its cache, then the CLI starts through tsx: seconds on a loaded machine.
  this.timeout(60_000);
  let clone: string;
  let cache: string;

  before(() => {
    clone = freshClone();
    cache = mkdtempSync(join(tmpdir(), 'kling-npm-cache-'));
  });

  after(() => {
    rmSync(clone, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  });

  it('runs the CLI from the sources without a build (no dist/)', async () => {
    expect(existsSync(join(clone, 'dist'))).to.equal(false);
    // A cache of its own and offline: npx must find the command in the clone, not on a registry.
    const env = { ...process.env, npm_config_cache: cache, npm_config_offline: 'true', npm_config_yes: 'true' };
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile('npx', ['kling-relay', ...args], { cwd: clone, env }, (error, stdout, stderr) => {
          resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
        });
      });
    const help = await run(['--help']);
    expect(help.code, help.stderr).to.equal(0);
    expect(help.stdout).to.match(/^Usage: kling-relay <command>/);
    const check = await run(['check', '--pricing', 'examples/pricing.json']);
    expect(check.code, check.stderr).to.equal(0);
    expect(check.stdout).to.include('Every endpoint is priced.');
    expect(existsSync(join(clone, 'dist'))).to.equal(false);
  });
});
