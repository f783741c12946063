import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import type { BillingReport, TaskBilling } from '../../lib/index.js';
import { PNG_400x300, VIDEO_URL } from '../fixtures/media.js';
import { testDatabases, type TestDatabase } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const QPU = 500_000;
/** What the relay charges for a 5-second text2video at the test price of 0.01 USD a second. */
const CHARGE = 0.01 * 5 * QPU;
/** A synchronous call at the test's fixed price of 0.01 USD. */
const SYNC_CHARGE = 0.01 * QPU;
/** What Kling reports deducting for the tasks whose figures the test sets. */
const ONE_UNIT = { unit: '1', balance: { quota: '0', list_price: '0' } };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'lib/cli.ts'), ...args], { cwd: ROOT }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The URL the CLI reaches the harness's database with. */
function databaseUrl(database: TestDatabase, h: Harness): string {
  if (database.name === 'mysql') return process.env.TEST_MYSQL_URL ?? '';
  if (database.name === 'pg') return process.env.TEST_PG_URL ?? '';
  return String((h.db.client.config as { connection: { filename: string } }).connection.filename);
}

/** The harness's accounts as an --accounts file. */
function accountsFile(h: Harness): string {
  const dir = mkdtempSync(join(tmpdir(), 'kling-billing-'));
  const file = join(dir, 'accounts.json');
  const a = h.keys.a;
  const b = h.keys.b;
  writeFileSync(file, JSON.stringify([
    { id: 'a', accessKey: a?.accessKey, secretKey: a?.secretKey, baseUrl: h.sandbox.url },
    { id: 'b', apiKey: b?.apiKeys?.[0], baseUrl: h.sandbox.url },
  ]));
  return file;
}

function byTask(report: BillingReport): Map<string, TaskBilling> {
  return new Map(report.tasks.map((t) => [t.klingTaskId ?? `row-${t.relay?.id}`, t]));
}

for (const database of testDatabases()) {
  describe(`reconcile-billing on ${database.name}`, function () {
    this.timeout(60_000);
    let h: Harness;
    let alice: number;

    afterEach(async () => checkAndClose(h));

    async function submit(prompt: string): Promise<string> {
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(alice)).send({ prompt, duration: '5' });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      return res.body.data.task_id as string;
    }

    /** The relay settles the task from Kling's answer to a query. */
    async function settle(taskId: string): Promise<void> {
      const res = await request(h.url).get(`/kling/v1/videos/text2video/${taskId}`).set('X-User-Id', String(alice));
      expect(res.body.data.task_status).to.be.oneOf(['succeed', 'failed']);
    }

    it('lists per task and in total what Kling billed and what the caller was charged, and every disagreement; the CLI says the same', async () => {
      h = await startHarness(database, { accounts: [{ id: 'a' }, { id: 'b', apiKey: true }] });
      alice = await h.user(10_000_000);
      const from = Date.now() - 60_000;

      // One unit each, whatever Kling's price list would give a 5 s video, so that the figures below are plain.
      const agreed = await submit('settled');
      const refunded = await submit('failed, not billed');
      const unbilled = await submit('charged, then Kling forgets it');
      const billedFailed = await submit('failed, billed all the same');
      const cash = await submit('paid partly from the balance');
      const differs = await submit('billed twice what it reported');
      const open = await submit('still running');
      const rowTampered = await submit('its row rewritten');
      h.sandbox.complete(agreed, { status: 'succeed', deductions: ONE_UNIT });
      h.sandbox.complete(refunded, { status: 'failed', message: 'content policy' });
      h.sandbox.complete(unbilled, { status: 'succeed', deductions: ONE_UNIT });
      h.sandbox.complete(billedFailed, { status: 'failed', message: 'timeout', deductions: { unit: '1', balance: { quota: '0', list_price: '0' } } });
      h.sandbox.complete(cash, { status: 'succeed', deductions: { unit: '0.5', balance: { quota: '0.35', list_price: '0.7' } } });
      h.sandbox.complete(differs, { status: 'succeed', deductions: ONE_UNIT });
      h.sandbox.complete(rowTampered, { status: 'succeed', deductions: ONE_UNIT });
      for (const id of [agreed, refunded, unbilled, billedFailed, cash, differs, rowTampered]) await settle(id);
      // The relay's side tampered: the task row claims a charge its ledger rows never took.
      expect(await h.db('kling_relay_tasks').where({ kling_task_id: rowTampered }).update({ charge_quota: 1 })).to.equal(1);
      // Synchronous calls: image-recognize answers with a task id Kling bills under, identify-face with a session only.
      const recognized = await request(h.url).post('/kling/v1/videos/image-recognize').set('X-User-Id', String(alice)).send({ image: PNG_400x300 });
      const recognizedId = recognized.body.data.task_id as string;
      const face = await request(h.url).post('/kling/v1/videos/identify-face').set('X-User-Id', String(alice)).send({ video_url: VIDEO_URL });
      expect([recognized.status, face.status]).to.deep.equal([200, 200]);

      // Kling's side tampered after the relay settled: one task no longer billed, one billed 3 units where it reported 1.
      const unbilledAtKling = h.sandbox.tasks.getTask(unbilled);
      const differsAtKling = h.sandbox.tasks.getTask(differs);
      if (!unbilledAtKling || !differsAtKling) throw new Error('sandbox lost a task');
      unbilledAtKling.finalUnitDeduction = '0';
      differsAtKling.finalUnitDeduction = '3';
      // A task made with account a's key behind the relay's back.
      const direct = await fetch(`${h.sandbox.url}/v1/videos/text2video`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await h.sandbox.token(h.keys.a)}` },
        body: JSON.stringify({ prompt: 'made elsewhere' }),
      });
      const stray = ((await direct.json()) as { data: { task_id: string } }).data.task_id;
      h.sandbox.complete(stray, { status: 'succeed', deductions: ONE_UNIT });
      const to = Date.now() + 60_000;

      const report = await h.relay.reconcileBilling({ from: new Date(from), to });
      expect(report.accounts.map((a) => [a.account, a.error])).to.deep.equal([['a', undefined], ['b', undefined]]);
      const tasks = byTask(report);
      const status = (id: string): string | undefined => tasks.get(id)?.status;
      expect([agreed, refunded, unbilled, billedFailed, cash, differs, open, rowTampered, recognizedId, stray].map(status)).to.deep.equal([
        'agree', 'agree', 'charged_not_billed', 'billed_but_refunded', 'agree', 'deduction_differs', 'open', 'row_differs', 'agree', 'not_recorded',
      ]);
      expect(tasks.get(rowTampered)?.reason).to.equal(`the task row says the caller was charged 1 quota, its ledger rows took ${CHARGE}`);
      const faceRow = report.tasks.find((t) => t.relay?.endpoint === '/v1/videos/identify-face');
      expect(faceRow).to.include({ klingTaskId: null, status: 'unchecked', reason: 'Kling answered it without a task id, so its bill cannot be found', callerCharged: SYNC_CHARGE });
      // Kling's list: 0.1 units per image recognition.
      expect(tasks.get(recognizedId)).to.include({ klingUnits: 0.1, callerCharged: SYNC_CHARGE });
      expect(tasks.get(agreed)).to.include({ klingUnits: 1, klingBalance: 0, callerCharged: CHARGE });
      expect(tasks.get(refunded)).to.include({ klingUnits: 0, callerCharged: 0 });
      expect(tasks.get(unbilled)).to.include({ klingUnits: 0, callerCharged: CHARGE });
      expect(tasks.get(billedFailed)).to.include({ klingUnits: 1, callerCharged: 0 });
      expect(tasks.get(cash)).to.include({ klingUnits: 0.5, klingBalance: 0.35, currency: 'USD', callerCharged: CHARGE });
      expect(tasks.get(differs)).to.include({ klingUnits: 3, callerCharged: CHARGE });
      expect(tasks.get(differs)?.relay).to.include({ reportedUnits: 1, state: 'succeed' });
      expect(tasks.get(open)).to.include({ callerCharged: CHARGE });
      expect(tasks.get(stray)).to.include({ relay: undefined, klingUnits: 1, callerCharged: 0, accountId: 'a' });
      expect(report.disagreements.map((d) => d.klingTaskId).sort()).to.deep.equal([unbilled, billedFailed, differs, rowTampered, stray].sort());
      expect(report.totals).to.deep.equal({
        klingUnits: 1 + 1 + 0.5 + 3 + 1 + 0.1 + 1,
        klingBalance: { USD: 0.35 },
        callerCharged: 6 * CHARGE + 2 * SYNC_CHARGE,
        tasks: 11,
        disagreements: 5,
        open: 1,
        unchecked: 1,
      });
      // The callers' charges are the ledger's: the balance fell by exactly what the report says they were charged.
      expect(await h.balance(alice)).to.equal(10_000_000 - report.totals.callerCharged);

      const dbUrl = databaseUrl(database, h);
      const accounts = accountsFile(h);
      const day = (ms: number): string => new Date(ms).toISOString();
      const json = await cli(['reconcile-billing', '--from', day(from), '--to', day(to), '--db', dbUrl, '--accounts', accounts, '--json']);
      expect(json.code, json.stderr).to.equal(3);
      const printed = JSON.parse(json.stdout) as BillingReport;
      expect(printed.totals).to.deep.equal(report.totals);
      expect(printed.tasks.map((t) => [t.klingTaskId, t.status])).to.deep.equal(report.tasks.map((t) => [t.klingTaskId, t.status]));

      const text = await cli(['reconcile-billing', '--from', day(from), '--to', day(to), '--db', dbUrl, '--accounts', accounts]);
      expect(text.code, text.stderr).to.equal(3);
      expect(text.stdout).to.include('11 tasks, 5 disagree.');
      expect(text.stdout).to.include(`Total: Kling 7.6 units and 0.35 USD; callers charged ${6 * CHARGE + 2 * SYNC_CHARGE} quota; 5 disagreements, 1 open, 1 unchecked.`);
      expect(text.stdout).to.match(new RegExp(`${billedFailed} \\(account [ab], relay task \\d+, user ${alice}\\): billed_but_refunded: Kling billed it, the relay failed it and refunded the caller`));
      expect(text.stdout).to.include(`${stray} (account a): not_recorded: Kling billed a task the relay has no record of`);

      // A period with no task and no deduction agrees: exit 0.
      const quiet = await cli(['reconcile-billing', '--from', '2020-01-01', '--to', '2020-01-02', '--db', dbUrl, '--accounts', accounts, '--json']);
      expect(quiet.code, quiet.stderr).to.equal(0);
      expect((JSON.parse(quiet.stdout) as BillingReport).totals).to.include({ tasks: 0, disagreements: 0 });
    });

    it('marks the tasks of an account whose billing cannot be read as unchecked, and exits 1', async () => {
      // Account a takes no new task: every task goes to b, whose key the CLI is given wrong.
      h = await startHarness(database, { accounts: [{ id: 'a', weight: 0 }, { id: 'b', apiKey: true }] });
      alice = await h.user(10_000_000);
      const from = Date.now() - 60_000;
      for (const prompt of ['one', 'two']) {
        const id = await submit(prompt);
        h.sandbox.complete(id, { status: 'succeed' });
        await settle(id);
      }
      const file = accountsFile(h);
      writeFileSync(file, JSON.stringify([
        { id: 'a', accessKey: h.keys.a?.accessKey, secretKey: h.keys.a?.secretKey, baseUrl: h.sandbox.url },
        { id: 'b', apiKey: 'revoked-key', baseUrl: h.sandbox.url },
      ]));
      const run = await cli(['reconcile-billing', '--from', new Date(from).toISOString(), '--to', new Date(Date.now() + 60_000).toISOString(), '--db', databaseUrl(database, h), '--accounts', file, '--json']);
      expect(run.code, run.stderr).to.equal(1);
      const report = JSON.parse(run.stdout) as BillingReport;
      expect(report.accounts).to.deep.equal([
        { account: 'a', unitRows: 0, balanceRows: 0 },
        { account: 'b', unitRows: 0, balanceRows: 0, error: { kind: 'kling', message: 'Kling answered HTTP 401 code 1002: Authorization is invalid', httpStatus: 401, klingCode: 1002 } },
      ]);
      expect(report.tasks.map((t) => [t.accountId, t.status, t.reason])).to.deep.equal([
        ['b', 'unchecked', "Kling's billing of account b was not read"],
        ['b', 'unchecked', "Kling's billing of account b was not read"],
      ]);
      expect(report.totals).to.include({ tasks: 2, disagreements: 0, unchecked: 2, callerCharged: 2 * CHARGE });
    });

    it('refuses bad dates and a missing --db with exit 2, touching nothing', async () => {
      h = await startHarness(database);
      const bad = await cli(['reconcile-billing', '--from', 'yesterday', '--to', '2026-12-01', '--db', 'x.sqlite']);
      expect([bad.code, bad.stderr.split('\n')[0]]).to.deep.equal([2, 'kling-relay reconcile-billing: --from must be a date (2026-12-01) or an ISO date and time (2026-12-01T12:00:00Z), got "yesterday"']);
      const reversed = await cli(['reconcile-billing', '--from', '2026-12-02', '--to', '2026-12-01', '--db', 'x.sqlite']);
      expect([reversed.code, reversed.stderr.split('\n')[0]]).to.deep.equal([2, 'kling-relay reconcile-billing: --from must not be after --to']);
      const noDb = await cli(['reconcile-billing', '--from', '2026-12-01', '--to', '2026-12-01']);
      expect([noDb.code, noDb.stderr.split('\n')[0]]).to.deep.equal([2, 'kling-relay reconcile-billing: --db <url> is required']);
      expect(h.sandbox.requests).to.have.length(0);
    });
  });
}
