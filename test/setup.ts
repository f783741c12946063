import { skippedDatabases } from './support/databases.js';

const skipped = skippedDatabases();
/** The databases the suites run on: SQLite always, a server database when its URL is set. */
const ranOn = ['SQLite', ...(process.env.TEST_MYSQL_URL ? ['MariaDB/MySQL'] : []), ...(process.env.TEST_PG_URL ? ['PostgreSQL'] : [])].join(' and ');
if (skipped.length > 0) {
  console.log(`\n  Database suites run on ${ranOn} only. Skipped: ${skipped.join('; ')}.\n`);
}

/**
 * Mocha's global teardown runs after the reporter's summary and failure details, so the skipped
 * databases are said again as the run's last line: the first notice has scrolled away by then.
 */
export function mochaGlobalTeardown(): void {
  if (skipped.length > 0) console.log(`  Database suites ran on ${ranOn} only. Skipped: ${skipped.join('; ')}.\n`);
}
