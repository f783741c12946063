// Runs before `npm start` and `npm test`: on a fresh clone it installs the locked dependencies
// first (`npm ci`), so that the README's two commands are all a newcomer types. Once installed it
// does nothing. Plain Node on purpose: it runs before any dependency exists.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const installed = ['tsx', 'mocha', 'better-sqlite3', 'express', 'knex'].every((name) => existsSync(join(root, 'node_modules', name, 'package.json')));
if (!installed) {
  console.error('kling-relay: dependencies are not installed yet; running `npm ci` once...');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error('kling-relay: `npm ci` failed; see above.');
    process.exit(result.status ?? 1);
  }
}
