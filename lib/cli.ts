#!/usr/bin/env node
/**
 * `kling-relay`, the package's command line: migrate a database, check a configuration, run the demo
 * host or the Kling sandbox alone, generate request types for an integrator's registry, show the Kling
 * accounts' resource packs, compare Kling's billing with the relay's charges.
 * Exit codes: 0 done, 1 the work failed (invalid configuration, database error, an account that could
 * not be read), 2 bad usage, 3 reconcile-billing found a disagreement.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { KlingRelayConfigError } from './errors.js';
import type { Schedule } from './sandbox/index.js';

// Each command loads its modules when it runs (the relay's schemas, the drivers, the sandbox), so
// that --help and a usage error answer at once.

class UsageError extends Error {}

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Record<string, string | boolean | undefined>): Promise<number>;
}

function portOf(value: string | boolean | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const port = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value) || port > 65535) throw new UsageError(`--port must be a number from 0 to 65535, got ${JSON.stringify(value)}`);
  return port;
}

function scheduleOf(value: string | boolean | undefined): Schedule {
  if (value === undefined) return { processingAfterMs: 1_000, finalAfterMs: 5_000 };
  if (value === 'manual' || value === 'instant') return value;
  const match = typeof value === 'string' ? /^(\d+):(\d+)$/.exec(value) : null;
  if (!match) throw new UsageError(`--schedule must be 'manual', 'instant' or <processingMs>:<finalMs> (e.g. 1000:5000), got ${JSON.stringify(value)}`);
  return { processingAfterMs: Number(match[1]), finalAfterMs: Number(match[2]) };
}

function dayOf(parseDay: (value: string, endOfDay: boolean) => number | undefined, value: string | boolean | undefined, name: 'from' | 'to'): number {
  if (typeof value !== 'string') throw new UsageError(`--${name} <date> is required`);
  const ms = parseDay(value, name === 'to');
  if (ms === undefined) throw new UsageError(`--${name} must be a date (2026-12-01) or an ISO date and time (2026-12-01T12:00:00Z), got ${JSON.stringify(value)}`);
  return ms;
}

function print(value: unknown, json: boolean, text: () => string): void {
  console.log(json ? JSON.stringify(value, null, 2) : text());
}

const ACCOUNTS_SOURCE = `  --accounts <file>  a JSON list of Kling accounts as createKlingRelay's accounts option takes them
                     ([{"id": "main", "apiKey": "..."}, {"id": "b", "accessKey": "...", "secretKey": "..."}]);
                     default: KLING_API_KEY, or KLING_ACCESS_KEY and KLING_SECRET_KEY, with KLING_BASE_URL`;

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

const COMMANDS: Record<string, Command> = {
  migrate: {
    summary: "create the relay's own tables (kling_relay_*) in a database",
    usage: `kling-relay migrate --db <url> [--host-tables]

  --db <url>        mysql://user:pass@host:3306/db, postgres://user:pass@host:5432/db,
                    or a SQLite file path (sqlite:path also works)
  --host-tables     also create default videos, images and users tables when they do not exist
                    (for a new host; an existing host keeps its own), and check those that existed
                    against the relay's writes: exits 1 naming each problem (ERR_KLING_RELAY_HOST_SCHEMA)

Idempotent: running it again changes nothing. Host tables are never altered.`,
    options: { db: { type: 'string' }, 'host-tables': { type: 'boolean' } },
    async run(values) {
      if (typeof values.db !== 'string' || values.db === '') throw new UsageError('--db <url> is required');
      const { migrateDatabase } = await import('./cli/migrate.js');
      const { hostSchemaError } = await import('../adapters/host-check.js');
      const { done, problems } = await migrateDatabase(values.db, values['host-tables'] === true);
      console.log(done);
      if (problems.length > 0) throw hostSchemaError(problems);
      return 0;
    },
  },
  check: {
    summary: "validate a registry and a pricing file, print each endpoint's typical price; check the host tables",
    usage: `kling-relay check [--registry <file>] [--pricing <file>] [--quota-per-unit <n>] [--strict]
                  [--db <url> [--tables <file>]]

  --registry <file>      an integrator's registry (merged over the built-in one, as createKlingRelay does)
  --pricing <file>       pricing rules (README, "Pricing"); without it no endpoint is priced
  --quota-per-unit <n>   quota units per USD (default 500000)
  --strict               exit 1 when some endpoint has no price
  --db <url>             also check the host tables in this database (as for migrate) against the
                         relay's writes: exits 1 naming each problem (ERR_KLING_RELAY_HOST_SCHEMA)
  --tables <file>        JSON {"profile": "one-api", "channelIds": true, "tables": {"video": {...},
                         "image": {...}}, "quota": {...} or false}, each optional: the profile, tables and
                         quota options given to createKlingRelay, and whether every account has a
                         channelId (default: true with a profile); default: videos, images, users

A typical request uses the schema's defaults (else its first example or enum value) for the model,
mode, duration and count fields. Exits 1 with the coded error when the registry or pricing is invalid.`,
    options: { registry: { type: 'string' }, pricing: { type: 'string' }, 'quota-per-unit': { type: 'string' }, strict: { type: 'boolean' }, db: { type: 'string' }, tables: { type: 'string' } },
    async run(values) {
      if (values.tables !== undefined && values.db === undefined) throw new UsageError('--tables needs --db <url>');
      const qpu = values['quota-per-unit'] === undefined ? 500_000 : Number(values['quota-per-unit']);
      if (!(Number.isFinite(qpu) && qpu > 0)) throw new UsageError(`--quota-per-unit must be a positive number, got ${JSON.stringify(values['quota-per-unit'])}`);
      const { checkConfiguration, checkDatabase, formatCheck } = await import('./cli/check.js');
      const result = checkConfiguration({ registry: values.registry as string | undefined, pricing: values.pricing as string | undefined, quotaPerUnit: qpu });
      console.log(formatCheck(result));
      if (typeof values.db === 'string') console.log(`\n${await checkDatabase(values.db, values.tables as string | undefined)}`);
      return values.strict === true && result.unpriced.length > 0 ? 1 : 0;
    },
  },
  serve: {
    summary: 'run the demo host: SQLite, a seeded user and token, the relay at /kling, the Kling sandbox',
    usage: `kling-relay serve [--port <n>] [--host <addr>] [--dir <dir>] [--pricing <file>]

  --port <n>        default 3000 (0 picks a free port)
  --host <addr>     default 127.0.0.1
  --dir <dir>       the SQLite file and callback secret (default ./.kling-relay-demo)
  --pricing <file>  pricing rules (default: the package's examples/pricing.json)

Needs better-sqlite3 installed next to kling-relay. Uses real Kling when KLING_API_KEY is set, or
KLING_ACCESS_KEY and KLING_SECRET_KEY (then set KLING_CALLBACK_URL to a public URL of /kling/callback).
Ctrl+C stops it.`,
    options: { port: { type: 'string' }, host: { type: 'string' }, dir: { type: 'string' }, pricing: { type: 'string' } },
    async run(values) {
      const { runDemoHost } = await import('./demo-host.js');
      await runDemoHost({
        port: portOf(values.port, 3000),
        host: (values.host as string | undefined) ?? '127.0.0.1',
        dir: (values.dir as string | undefined) ?? '.kling-relay-demo',
        ...(typeof values.pricing === 'string' ? { pricing: values.pricing } : {}),
      });
      return -1; // keeps running; the demo host exits on a signal
    },
  },
  sandbox: {
    summary: "run the Kling sandbox alone (a local stand-in for Kling's API, for a host's own tests)",
    usage: `kling-relay sandbox [--port <n>] [--host <addr>] [--schedule <s>]

  --port <n>        default 0 (a free port; the URL is printed)
  --host <addr>     default 127.0.0.1
  --schedule <s>    'manual', 'instant' or <processingMs>:<finalMs> (default 1000:5000)

Prints the base URL, the access and secret key and the API key it accepts. Ctrl+C stops it.`,
    options: { port: { type: 'string' }, host: { type: 'string' }, schedule: { type: 'string' } },
    async run(values) {
      const { startKlingSandbox } = await import('./sandbox/index.js');
      const sandbox = await startKlingSandbox({ port: portOf(values.port, 0), host: (values.host as string | undefined) ?? '127.0.0.1', schedule: scheduleOf(values.schedule) });
      const account = sandbox.accounts[0];
      process.stdout.write(
        [`Kling sandbox listening on ${sandbox.url}`, `  KLING_BASE_URL=${sandbox.url}`, `  KLING_ACCESS_KEY=${account?.accessKey ?? ''}`, `  KLING_SECRET_KEY=${account?.secretKey ?? ''}`, `  KLING_API_KEY=${account?.apiKeys?.[0] ?? ''}`, 'Ctrl+C stops it.', ''].join('\n'),
      );
      await waitForSignal();
      await sandbox.close();
      return 0;
    },
  },
  accounts: {
    summary: "show each Kling account's resource packs and what remains of them",
    usage: `kling-relay accounts [--accounts <file>] [--json]

${ACCOUNTS_SOURCE}
  --json             print the packs as JSON

Reads Kling's GET /account/costs of every account (the packs valid in the last year), at most one
request a second per account as Kling asks. Kling's remaining quantities run up to 12 hours late. An
account that cannot be read (a bad key, Kling down) is shown with its error; the command then exits 1.`,
    options: { accounts: { type: 'string' }, json: { type: 'boolean' } },
    async run(values) {
      const { cliAccounts, formatPacks, readAccountPacks } = await import('./cli/accounts.js');
      const reports = await readAccountPacks(cliAccounts(values.accounts as string | undefined, process.env));
      print(reports, values.json === true, () => formatPacks(reports));
      return reports.some((r) => r.error) ? 1 : 0;
    },
  },
  'reconcile-billing': {
    summary: "compare Kling's per-task billing with what the relay charged its callers",
    usage: `kling-relay reconcile-billing --from <date> --to <date> --db <url> [--accounts <file>] [--json]

  --from <date>      the first day (2026-12-01, UTC) or an ISO date and time
  --to <date>        the last day, included, or an ISO date and time
  --db <url>         the relay's database (as for migrate)
${ACCOUNTS_SOURCE}
  --json             print the report as JSON

Takes the relay's tasks created in the period and Kling's unit and balance deductions
(/account/billing/package and /account/billing/balance) from the period's start to a day after its
end, and prints per task what Kling billed, what the caller was charged, and every disagreement: a
task Kling billed that the relay refunded or never recorded, one the relay charged that Kling did not
bill, one whose billing detail differs from what Kling reported when it ended.
Exits 3 when there is a disagreement, 1 when an account's billing could not be read, 0 otherwise.`,
    options: { from: { type: 'string' }, to: { type: 'string' }, db: { type: 'string' }, accounts: { type: 'string' }, json: { type: 'boolean' } },
    async run(values) {
      const { cliAccounts, formatBilling, parseDay, readBillingReport } = await import('./cli/accounts.js');
      const from = dayOf(parseDay, values.from, 'from');
      const to = dayOf(parseDay, values.to, 'to');
      if (from > to) throw new UsageError('--from must not be after --to');
      if (typeof values.db !== 'string' || values.db === '') throw new UsageError('--db <url> is required');
      const report = await readBillingReport(values.db, cliAccounts(values.accounts as string | undefined, process.env), from, to);
      print(report, values.json === true, () => formatBilling(report));
      if (report.disagreements.length > 0) return 3;
      return report.accounts.some((a) => a.error) ? 1 : 0;
    },
  },
  'gen-types': {
    summary: "generate TypeScript request types for an integrator's registry entries",
    usage: `kling-relay gen-types --registry <file> --out <dir>

  --registry <file>  your registry file; one type per entry, named after its schema's title
  --out <dir>        where to write <type>.ts files and index.ts

Needs json-schema-to-typescript (an optional peer dependency: npm install -D json-schema-to-typescript).
References to the built-in shared definitions (https://kling-relay.dev/schemas/defs.json) are resolved
from the package, never fetched. The built-in endpoints' types ship with the package.`,
    options: { registry: { type: 'string' }, out: { type: 'string' } },
    async run(values) {
      if (typeof values.registry !== 'string') throw new UsageError('--registry <file> is required');
      if (typeof values.out !== 'string') throw new UsageError('--out <dir> is required');
      const { generateTypes } = await import('./cli/gen-types.js');
      const written = await generateTypes(values.registry, values.out);
      console.log(`kling-relay gen-types: wrote ${written.join(', ')}`);
      return 0;
    },
  },
};

function mainUsage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: kling-relay <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun kling-relay <command> --help for a command's options.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(mainUsage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`kling-relay: unknown command '${name}'.\n\n${mainUsage()}`);
    return 2;
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    const parsed = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
    values = parsed.values as Record<string, string | boolean | undefined>;
  } catch (error) {
    console.error(`kling-relay ${name}: ${(error as Error).message}\n\nUsage: ${command.usage}`);
    return 2;
  }
  if (values.help) {
    console.log(`Usage: ${command.usage}`);
    return 0;
  }
  try {
    return await command.run(values);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`kling-relay ${name}: ${error.message}\n\nUsage: ${command.usage}`);
      return 2;
    }
    const code = error instanceof KlingRelayConfigError ? `${error.code}: ` : '';
    console.error(`kling-relay ${name}: ${code}${(error as Error).message}`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`kling-relay: ${(error as Error).stack ?? String(error)}`);
    process.exitCode = 1;
  },
);
