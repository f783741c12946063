import { skippedDatabases } from './support/databases.js';

const skipped = skippedDatabases();
if (skipped.length > 0) {
  console.log(`\n  Database suites run on SQLite only. Skipped: ${skipped.join('; ')}.\n`);
}
