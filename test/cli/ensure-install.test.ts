import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Stands in for `npm ci`: logs that it started, holds until the test writes `release`, then installs
 * left-pad 1.3.0, the one package the clone's package-lock.json names.
 */
const FAKE_INSTALL = `
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
appendFileSync('install.log', 'start\\n');
const timer = setInterval(() => {
  if (!existsSync('release')) return;
  clearInterval(timer);
  mkdirSync('node_modules/left-pad', { recursive: true });
  writeFileSync('node_modules/left-pad/package.json', JSON.stringify({ name: 'left-pad', version: '1.3.0' }));
  appendFileSync('install.log', 'done\\n');
}, 20);
`;

const LOCK = {
  name: 'clone',
  lockfileVersion: 3,
  packages: {
    '': { name: 'clone', devDependencies: { 'left-pad': '^1.3.0' } },
    'node_modules/left-pad': { version: '1.3.0', dev: true },
    // Optional packages for another platform are not installed, and not missing.
    'node_modules/fsevents': { version: '2.3.3', dev: true, optional: true },
  },
};

interface Started {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

describe('scripts/ensure-install.mjs (before npm start and npm test)', function () {
  this.timeout(30_000);
  let clone: string;
  let env: NodeJS.ProcessEnv;

  beforeEach(() => {
    clone = mkdtempSync(join(tmpdir(), 'kling-install-'));
    mkdirSync(join(clone, 'scripts'));
    copyFileSync(join(ROOT, 'scripts/ensure-install.mjs'), join(clone, 'scripts/ensure-install.mjs'));
    writeFileSync(join(clone, 'package-lock.json'), JSON.stringify(LOCK));
    writeFileSync(join(clone, 'fake-install.mjs'), FAKE_INSTALL);
    // A real `npm ci` must never run here: an npm on PATH that refuses, in case the override is ignored.
    const bin = join(clone, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'npm'), '#!/bin/sh\necho "npm $* refused by the test" >&2\nexit 1\n');
    chmodSync(join(bin, 'npm'), 0o755);
    env = {
      ...process.env,
      PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`,
      KLING_RELAY_INSTALL_COMMAND: `"${process.execPath}" fake-install.mjs`,
      KLING_RELAY_INSTALL_PROGRESS_MS: '50',
    };
  });

  afterEach(() => rmSync(clone, { recursive: true, force: true }));

  function start(): Started {
    const child = spawn(process.execPath, ['scripts/ensure-install.mjs'], { cwd: clone, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return { child, stderr: () => stderr, exited };
  }

  /** Resolves once the process has printed `pattern` on stderr; fails if it exits first. */
  function printed(run: Started, pattern: RegExp): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (pattern.test(run.stderr())) resolve();
      };
      run.child.stderr!.on('data', check);
      check();
      void run.exited.then((code) => reject(new Error(`exited ${code} before printing ${pattern}:\n${run.stderr()}`)));
    });
  }

  const installs = (): string => (existsSync(join(clone, 'install.log')) ? readFileSync(join(clone, 'install.log'), 'utf8') : '');

  it('installs once when two runs start together: the second waits for the lock and says so; the first shows progress and an honest time', async () => {
    const first = start();
    await printed(first, /still installing/);
    expect(first.stderr()).to.match(/about 5 minutes/);
    const second = start();
    await printed(second, new RegExp(`waiting for it \\(pid ${first.child.pid}\\)`));
    expect(installs()).to.equal('start\n');

    writeFileSync(join(clone, 'release'), '');
    expect(await first.exited, first.stderr()).to.equal(0);
    expect(await second.exited, second.stderr()).to.equal(0);
    expect(installs()).to.equal('start\ndone\n');
    expect(first.stderr()).to.match(/dependencies installed in \d+ s/);
    expect(second.stderr()).to.match(/the other install finished; the dependencies are ready/);
    expect(existsSync(join(clone, '.install.lock'))).to.equal(false);
  });

  it('does nothing when node_modules matches package-lock.json; reinstalls a stale one, taking over the lock of a dead install', async () => {
    mkdirSync(join(clone, 'node_modules/left-pad'), { recursive: true });
    writeFileSync(join(clone, 'node_modules/left-pad/package.json'), JSON.stringify({ name: 'left-pad', version: '1.3.0' }));
    const quiet = start();
    expect(await quiet.exited).to.equal(0);
    expect([quiet.stderr(), installs()]).to.deep.equal(['', '']);

    writeFileSync(join(clone, 'node_modules/left-pad/package.json'), JSON.stringify({ name: 'left-pad', version: '1.2.0' }));
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    writeFileSync(join(clone, '.install.lock'), JSON.stringify({ pid: dead, started: Date.now() }));
    writeFileSync(join(clone, 'release'), '');
    const stale = start();
    expect(await stale.exited, stale.stderr()).to.equal(0);
    expect(stale.stderr()).to.include('left-pad is 1.2.0, package-lock.json wants 1.3.0');
    expect(stale.stderr()).to.include(`an earlier install (pid ${dead}) did not finish`);
    expect(installs()).to.equal('start\ndone\n');
    expect(existsSync(join(clone, '.install.lock'))).to.equal(false);
  });
});
