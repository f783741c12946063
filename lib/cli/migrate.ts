import knex, { type Knex } from 'knex';
import { checkHostTables, type HostSchemaProblem } from '../../adapters/host-check.js';
import { createDefaultHostTables } from '../../adapters/host-schema.js';
import { HostTable } from '../../adapters/host-table.js';
import { resolveQuotaStoreOptions } from '../../adapters/quota-store.js';
import { RelayStore } from '../../adapters/relay-store.js';
import { KlingRelayConfigError } from '../errors.js';

/** The driver each URL scheme needs; the host installs it (the relay's peers are knex and its driver). */
const DRIVERS: Record<string, string> = { mysql2: 'mysql2', pg: 'pg', 'better-sqlite3': 'better-sqlite3' };

/** A knex configuration from a database URL: mysql:// (or mariadb://), postgres://, or a SQLite file path. */
export function knexConfigFor(url: string): Knex.Config {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'mysql' || scheme === 'mariadb') return { client: 'mysql2', connection: url.replace(/^mariadb:/i, 'mysql:') };
  if (scheme === 'postgres' || scheme === 'postgresql') return { client: 'pg', connection: url };
  if (scheme === 'sqlite' || scheme === 'file') {
    const filename = url.replace(/^(sqlite|file):(\/\/)?/i, '');
    if (filename === '') throw new KlingRelayConfigError('ERR_KLING_RELAY_CLI_DB', `No SQLite file in ${JSON.stringify(url)}: use sqlite:path/to/file.sqlite or just the path.`);
    return { client: 'better-sqlite3', connection: { filename }, useNullAsDefault: true };
  }
  // One letter is a Windows drive (C:\...), which is a file path too.
  if (scheme !== undefined && scheme.length > 1 && /^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new KlingRelayConfigError('ERR_KLING_RELAY_CLI_DB', `Unsupported database URL scheme '${scheme}:': use mysql://, postgres:// or a SQLite file path.`);
  }
  return { client: 'better-sqlite3', connection: { filename: url }, useNullAsDefault: true };
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]+):[^@/]*@/i, '$1:***@');
}

/** A knex instance on the URL, once a query went through; a coded error naming the fix otherwise. */
export async function openDatabase(url: string): Promise<Knex> {
  const config = knexConfigFor(url);
  const db = knex(config);
  try {
    await db.raw('select 1');
  } catch (cause) {
    await db.destroy().catch(() => undefined);
    const message = (cause as Error).message;
    const driver = DRIVERS[String(config.client)];
    if (driver && /Cannot find module|run \$ npm install/i.test(message)) {
      throw new KlingRelayConfigError('ERR_KLING_RELAY_CLI_DB', `The ${driver} driver is not installed: npm install ${driver}`, { cause });
    }
    throw new KlingRelayConfigError('ERR_KLING_RELAY_CLI_DB', `Cannot connect to ${redact(url)}: ${message}`, { cause });
  }
  return db;
}

/**
 * `kling-relay migrate`: the relay's own tables, and the default host tables when asked. Host tables
 * that existed already are checked against the relay's writes, never altered: `problems` lists what
 * does not fit.
 */
export async function migrateDatabase(url: string, hostTables: boolean): Promise<{ done: string; problems: HostSchemaProblem[] }> {
  const db = await openDatabase(url);
  let problems: HostSchemaProblem[] = [];
  try {
    if (hostTables) {
      const [video, image, users] = await Promise.all(['videos', 'images', 'users'].map((table) => db.schema.hasTable(table)));
      await createDefaultHostTables(db);
      problems = await checkHostTables(db, {
        video: video ? new HostTable({ name: 'videos' }, 'video') : undefined,
        image: image ? new HostTable({ name: 'images' }, 'image') : undefined,
        users: users ? resolveQuotaStoreOptions() : undefined,
      });
    }
    await new RelayStore().migrate(db, { warn: (message) => process.stderr.write(`kling-relay: ${message}\n`) });
  } finally {
    await db.destroy();
  }
  return { done: `kling-relay: ${hostTables ? 'host tables and ' : ''}kling_relay_* tables are ready in ${redact(url)}`, problems };
}
