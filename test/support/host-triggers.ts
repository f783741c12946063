import type { Knex } from 'knex';
import type { TestDatabase } from './databases.js';

const TRIGGER = 'kling_test_refuse_status';

/**
 * A trigger on the host's videos table that makes any update setting `status` to `status` fail, as
 * a host's own trigger or constraint would: the database itself refuses, in the relay's transaction.
 * Dropping the table drops the trigger too.
 */
export async function refuseHostStatus(database: TestDatabase, db: Knex, status: string): Promise<void> {
  const message = `host row refuses ${status}`;
  if (database.name === 'sqlite') {
    await db.raw(`CREATE TRIGGER ${TRIGGER} BEFORE UPDATE OF status ON videos WHEN NEW.status = '${status}' BEGIN SELECT RAISE(ABORT, '${message}'); END`);
  } else if (database.name === 'mysql') {
    await db.raw(`CREATE TRIGGER ${TRIGGER} BEFORE UPDATE ON videos FOR EACH ROW BEGIN IF NEW.status = '${status}' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '${message}'; END IF; END`);
  } else {
    await db.raw(`CREATE OR REPLACE FUNCTION ${TRIGGER}() RETURNS trigger AS $$ BEGIN IF NEW.status = '${status}' THEN RAISE EXCEPTION '${message}'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`);
    await db.raw(`CREATE TRIGGER ${TRIGGER} BEFORE UPDATE ON videos FOR EACH ROW EXECUTE FUNCTION ${TRIGGER}()`);
  }
}

export async function allowHostStatus(database: TestDatabase, db: Knex): Promise<void> {
  await db.raw(database.name === 'pg' ? `DROP TRIGGER ${TRIGGER} ON videos` : `DROP TRIGGER ${TRIGGER}`);
}
