import { skippedDatabases } from './support/databases.js';

const skipped = skippedDatabases();
if (skipped.length > 0) {
  console.log(`\n  Database suites run on SQLite only. Skipped: ${skipped.join('; ')}.\n`);
}

/**
 * Mocha's global teardown runs after the reporter's summary and failure details, so the skipped
 * databases are said again as the run's last line: the first notice has scrolled away by then.
 */
export function mochaGlobalTeardown(): void {
  if (skipped.length > 0) console.log(`  Database suites ran on SQLite only. Skipped: ${skipped.join('; ')}.\n`);
}
