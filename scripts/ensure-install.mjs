// Runs before `npm start` and `npm test`: on a fresh clone, or when node_modules no longer matches
// package-lock.json (after a pull that changed a dependency), it installs the locked dependencies
// (`npm ci`), so that the README's two commands are all a newcomer types. Otherwise it does nothing
// and prints nothing. Plain Node on purpose: it runs before any dependency exists.
//
// Two runs started at once (`npm start` and `npm test` in two terminals) must not run two installs
// over each other: the first takes the lock file .install.lock (holding its pid), the second waits
// for it to go and then finds the dependencies installed. A lock whose process is gone is taken over.
//
// Environment: KLING_RELAY_INSTALL_COMMAND, a shell command run instead of `npm ci` (the tests use
// it); KLING_RELAY_INSTALL_PROGRESS_MS, how often a progress line is printed (default 15000).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const lockFile = join(root, '.install.lock');
const progressMs = Number(process.env.KLING_RELAY_INSTALL_PROGRESS_MS) || 15_000;
const LOCK_POLL_MS = 250;
/** A lock file still empty after this long belongs to a run that died between creating and writing it. */
const EMPTY_LOCK_STALE_MS = 10_000;
/** npm ci takes about a minute; where better-sqlite3 has no prebuilt binary it compiles, up to about 5. */
const HOW_LONG = 'about a minute, up to about 5 minutes where better-sqlite3 has no prebuilt binary and compiles from source';

function say(message) {
  console.error(`kling-relay: ${message}`);
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Why the dependencies need installing, or undefined when node_modules has every top-level package
 * package-lock.json names at the locked version (optional ones, such as another platform's, may be absent).
 */
function installNeeded() {
  const lock = readJson(join(root, 'package-lock.json'));
  const wanted = Object.entries(lock?.packages ?? {}).filter(([path, entry]) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(path) && entry.version && !entry.optional && !entry.link);
  if (wanted.length === 0) {
    // No lock file to compare with: the packages the two scripts need.
    for (const name of ['tsx', 'mocha', 'better-sqlite3', 'express', 'knex']) {
      if (!existsSync(join(root, 'node_modules', name, 'package.json'))) return `${name} is not installed`;
    }
    return undefined;
  }
  if (!existsSync(join(root, 'node_modules'))) return 'the dependencies are not installed yet';
  for (const [path, entry] of wanted) {
    const name = path.slice('node_modules/'.length);
    const installed = readJson(join(root, path, 'package.json'));
    if (!installed) return `${name} is not installed`;
    if (installed.version !== entry.version) return `${name} is ${installed.version}, package-lock.json wants ${entry.version}`;
  }
  return undefined;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** Creates the lock file holding this process's pid; false when another run holds it. */
function tryLock() {
  let fd;
  try {
    fd = openSync(lockFile, 'wx');
  } catch (error) {
    if (error.code === 'EEXIST') return false;
    throw error;
  }
  writeSync(fd, JSON.stringify({ pid: process.pid, started: Date.now() }));
  closeSync(fd);
  return true;
}

/** True when the lock file's owner is gone (it crashed or was killed): the lock may be taken over. */
function lockIsStale(holder) {
  if (holder && Number.isInteger(holder.pid)) return !alive(holder.pid);
  try {
    return Date.now() - statSync(lockFile).mtimeMs > EMPTY_LOCK_STALE_MS;
  } catch {
    return false;
  }
}

/** Takes the lock, waiting for another run's install to finish; true when this run waited. */
async function lock() {
  let waitedSince;
  let nextNotice = 0;
  while (!tryLock()) {
    const holder = readJson(lockFile);
    if (lockIsStale(holder)) {
      say(`an earlier install${holder?.pid ? ` (pid ${holder.pid})` : ''} did not finish; taking over its lock (${lockFile}).`);
      rmSync(lockFile, { force: true });
      continue;
    }
    const now = Date.now();
    if (waitedSince === undefined) {
      waitedSince = now;
      nextNotice = now + progressMs;
      say(`another \`npm start\` or \`npm test\` is installing the dependencies; waiting for it (pid ${holder?.pid ?? 'unknown'}) to finish...`);
    } else if (now >= nextNotice) {
      nextNotice = now + progressMs;
      say(`still waiting for the other install (${Math.round((now - waitedSince) / 1000)} s so far; it takes ${HOW_LONG}).`);
    }
    await sleep(LOCK_POLL_MS);
  }
  return waitedSince !== undefined;
}

/** Runs `npm ci` (or the override), printing a progress line while it is silent; resolves to its exit code. */
function install() {
  const override = process.env.KLING_RELAY_INSTALL_COMMAND;
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const child = override
    ? spawn(override, { cwd: root, stdio: 'inherit', shell: true })
    : spawn(npm, ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  const started = Date.now();
  const progress = setInterval(() => {
    say(`still installing (${Math.round((Date.now() - started) / 1000)} s so far; ${HOW_LONG})...`);
  }, progressMs);
  return new Promise((resolve) => {
    child.on('error', (error) => {
      say(`could not run the install: ${error.message}`);
      resolve(1);
    });
    child.on('exit', (code, signal) => {
      clearInterval(progress);
      if (code === 0) say(`dependencies installed in ${Math.round((Date.now() - started) / 1000)} s.`);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

const reason = installNeeded();
if (reason) {
  const waited = await lock();
  // Ctrl+C during the install: the lock must not outlive this run (npm gets the signal too).
  const release = () => rmSync(lockFile, { force: true });
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      release();
      process.exit(130);
    });
  }
  try {
    const still = installNeeded();
    if (!still) {
      if (waited) say('the other install finished; the dependencies are ready.');
    } else {
      say(`${still}: installing the locked dependencies (\`npm ci\`) once. This takes ${HOW_LONG}.`);
      const code = await install();
      if (code !== 0) {
        say('the install failed; see above.');
        process.exitCode = code;
      }
    }
  } finally {
    release();
  }
}
