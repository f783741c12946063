import { expect } from 'chai';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import knex from 'knex';
import { PriceBook, loadPricingRules } from '../../lib/pricing/rules.js';
import { checkConfiguration } from '../../lib/cli/check.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const READY_TIMEOUT_MS = 8_000;
/** What the demo seeds: 10 USD at 500000 quota per USD. */
const START_QUOTA = 5_000_000;

interface Printed {
  url: string;
  token: string;
  /** The Kling-style access and secret key of the demo user. */
  kling: { accessKey: string; secretKey: string };
  quota: number;
  submit: { url: string; headers: Record<string, string>; body: string };
  query: { url: string; headers: Record<string, string> };
  /** The curl for the user's balance and recent tasks. */
  me: { url: string; headers: Record<string, string> };
}

interface RunningDemo {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  printed: Printed;
}

function header(line: string): [string, string] {
  const at = line.indexOf(':');
  return [line.slice(0, at).trim(), line.slice(at + 1).trim()];
}

/** Reads what the demo printed the way a person would: the URL, the token, and the two curls. */
function parse(out: string): Printed {
  const url = /kling-relay demo ready on (\S+)/.exec(out)?.[1];
  const token = /^\s+token\s+(\S+)$/m.exec(out)?.[1];
  const quota = /^\s+user\s+.*quota (\d+)/m.exec(out)?.[1];
  const accessKey = /^\s+kling AK\s+(\S+)$/m.exec(out)?.[1];
  const secretKey = /^\s+kling SK\s+(\S+)$/m.exec(out)?.[1];
  const submit = /curl -sS -X POST (\S+) \\\n\s+-H '([^']*)' \\\n\s+-H '([^']*)' \\\n\s+-d '([^']*)'\n/.exec(out);
  const query = /curl -sS (\S+) \\\n\s+-H '([^']*)'\n/.exec(out);
  const me = /curl -sS (\S+\/me) \\\n\s+-H '([^']*)'\n/.exec(out);
  if (!url || !token || !quota || !accessKey || !secretKey || !submit || !query || !me) throw new Error(`unexpected demo output:\n${out}`);
  return {
    url,
    token,
    kling: { accessKey, secretKey },
    quota: Number(quota),
    submit: { url: submit[1] as string, headers: Object.fromEntries([header(submit[2] as string), header(submit[3] as string)]), body: submit[4] as string },
    query: { url: query[1] as string, headers: Object.fromEntries([header(query[2] as string)]) },
    me: { url: me[1] as string, headers: Object.fromEntries([header(me[2] as string)]) },
  };
}

/** Starts `examples/demo.ts` as `npm start` would, on a free port and in `dir`; resolves once it is ready. */
function startDemo(dir: string): Promise<RunningDemo> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1', KLING_DEMO_DIR: dir };
  // The machine's own Kling settings must not turn the demo towards real Kling.
  for (const name of ['KLING_API_KEY', 'KLING_ACCESS_KEY', 'KLING_SECRET_KEY', 'KLING_BASE_URL', 'KLING_CALLBACK_URL', 'KLING_CALLBACK_DOMAIN', 'KLING_CALLBACK_SECRET', 'KLING_RELAY_LOG_LEVEL']) {
    delete env[name];
  }
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/demo.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => fail(`not ready after ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`demo ${why}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    };
    // The demo prints its whole block in one write; this is its last line.
    child.stdout.on('data', () => {
      if (settled || !stdout.includes('Ctrl+C stops the demo')) return;
      let printed: Printed;
      try {
        printed = parse(stdout);
      } catch (error) {
        fail((error as Error).message);
        return;
      }
      settled = true;
      clearTimeout(timer);
      resolve({ child, stdout: () => stdout, stderr: () => stderr, exited, printed });
    });
    void exited.then(({ code, signal }) => fail(`exited before it was ready (code ${code}, signal ${signal})`));
  });
}

/** A token as Kling's docs sign one: HS256, typ JWT, iss = access key, exp = now + 1800, nbf = now - 5. */
function klingToken(keys: { accessKey: string; secretKey: string }, now = Math.floor(Date.now() / 1000)): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ iss: keys.accessKey, exp: now + 1800, nbf: now - 5 })}`;
  return `${unsigned}.${createHmac('sha256', keys.secretKey).update(unsigned).digest('base64url')}`;
}

async function stopDemo(demo: RunningDemo): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  demo.child.kill('SIGTERM');
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('demo did not exit within 5 s of SIGTERM')), 5_000).unref());
  return Promise.race([demo.exited, timeout]);
}

async function balance(dir: string): Promise<number> {
  const db = knex({ client: 'better-sqlite3', connection: { filename: join(dir, 'demo.sqlite') }, useNullAsDefault: true });
  try {
    const row = (await db('users').where({ username: 'demo' }).first('quota')) as { quota: number | string };
    return Number(row.quota);
  } finally {
    await db.destroy();
  }
}

describe('demo host (npm start)', function () {
  this.timeout(15_000);
  let dir: string;
  // The tests run in order against one demo: start, submit, refuse, stop, restart.
  let demo: RunningDemo | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kling-relay-demo-'));
    demo = await startDemo(dir);
  });

  after(() => {
    // Only if a test failed before stopping it.
    if (demo && demo.child.exitCode === null && demo.child.signalCode === null) demo.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the URL, the seeded token, Kling keys and quota, and a submit and a query curl', () => {
    const printed = demo!.printed;
    expect(printed.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(printed.token).to.match(/^sk-demo-[0-9a-f]{48}$/);
    expect(printed.quota).to.equal(START_QUOTA);
    expect(printed.submit.url).to.equal(`${printed.url}/kling/v1/videos/text2video`);
    expect(printed.submit.headers).to.deep.equal({ Authorization: `Bearer ${printed.token}`, 'Content-Type': 'application/json' });
    expect(JSON.parse(printed.submit.body)).to.include({ model_name: 'kling-v1', duration: '5' });
    expect(printed.query.url).to.equal(`${printed.url}/kling/v1/videos/text2video/TASK_ID`);
    expect(printed.query.headers).to.deep.equal({ Authorization: `Bearer ${printed.token}` });
    expect(demo!.stdout()).to.match(/replace TASK_ID with data\.task_id/);
    expect(printed.kling.accessKey).to.match(/^ak-demo-[0-9a-f]{24}$/);
    expect(printed.kling.secretKey).to.match(/^[0-9a-f]{64}$/);
    expect(demo!.stdout()).to.include(`An existing Kling client works too: set its base URL to ${printed.url}/kling`);
  });

  it('accepts the printed submit request, holds quota, and answers the printed query for the task', async () => {
    const { submit, query } = demo!.printed;
    const res = await fetch(submit.url, { method: 'POST', headers: submit.headers, body: submit.body });
    const answer = (await res.json()) as { code: number; data: { task_id: string; task_status: string } };
    expect(res.status, JSON.stringify(answer)).to.equal(200);
    expect(answer.code).to.equal(0);
    expect(answer.data.task_id).to.be.a('string').and.not.equal('');
    expect(answer.data.task_status).to.equal('submitted');
    const taskId = answer.data.task_id;
    // 0.028 USD per second x the margin 1.25 x 5 s x 500000 quota per USD (examples/pricing.json).
    expect(await balance(dir)).to.equal(START_QUOTA - 87_500);

    const got = await fetch(query.url.replace('TASK_ID', taskId), { headers: query.headers });
    const task = (await got.json()) as { code: number; data: { task_id: string } };
    expect(got.status, JSON.stringify(task)).to.equal(200);
    expect(task.data.task_id).to.equal(taskId);
  });

  it('answers the printed GET /me curl with the user\'s quota and recent tasks, and 401 without the token', async () => {
    const { url, token, me, submit } = demo!.printed;
    expect(me).to.deep.equal({ url: `${url}/me`, headers: { Authorization: `Bearer ${token}` } });
    const res = await fetch(me.url, { headers: me.headers });
    const body = (await res.json()) as { code: number; request_id: string; data: { user: { id: number; username: string }; quota: number; quota_usd: string; tasks: Record<string, unknown>[] } };
    expect(res.status, JSON.stringify(body)).to.equal(200);
    expect(body.code).to.equal(0);
    expect(body.request_id).to.be.a('string').and.not.equal('');
    expect(body.data.user.username).to.equal('demo');
    expect(body.data.quota).to.equal(await balance(dir));
    expect(body.data.quota).to.equal(START_QUOTA - 87_500);
    expect(body.data.quota_usd).to.equal('9.82');
    // The task the previous test submitted, newest first, as the submit answered it.
    expect(body.data.tasks).to.have.length(1);
    const [task] = body.data.tasks;
    expect(task).to.include({ endpoint: '/v1/videos/text2video', model: 'kling-v1', hold_quota: 87_500 });
    expect(task!.task_id).to.be.a('string').and.not.equal('');
    expect(task!.task_status).to.be.oneOf(['submitted', 'processing', 'succeed']);
    const queried = await fetch(submit.url + '/' + String(task!.task_id), { headers: me.headers });
    expect(queried.status).to.equal(200);

    const refused = await fetch(me.url);
    expect(refused.status).to.equal(401);
    expect(((await refused.json()) as { code: number }).code).to.equal(1000);
  });

  it('answers 401 with code 1000 in Kling\'s envelope without a token or with a wrong one', async () => {
    const { submit } = demo!.printed;
    const attempts: Record<string, string>[] = [{ 'Content-Type': 'application/json' }, { 'Content-Type': 'application/json', Authorization: 'Bearer sk-demo-wrong' }];
    for (const headers of attempts) {
      const res = await fetch(submit.url, { method: 'POST', headers, body: submit.body });
      expect(res.status).to.equal(401);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body.code).to.equal(1000);
      expect(body.message).to.be.a('string').and.not.equal('');
      expect(body.request_id).to.be.a('string').and.not.equal('');
    }
    expect(await balance(dir)).to.equal(START_QUOTA - 87_500);
  });

  it('accepts a Kling JWT signed with the printed keys, and answers Kling\'s codes for a bad one', async () => {
    const { submit, query, kling } = demo!.printed;
    const jwt = (token: string) => ({ Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' });
    const res = await fetch(submit.url, { method: 'POST', headers: jwt(klingToken(kling)), body: submit.body });
    const answer = (await res.json()) as { code: number; data: { task_id: string } };
    expect(res.status, JSON.stringify(answer)).to.equal(200);
    expect(answer.code).to.equal(0);
    expect(await balance(dir)).to.equal(START_QUOTA - 175_000);
    // The task belongs to the demo user whichever way it authenticates.
    const byToken = await fetch(query.url.replace('TASK_ID', answer.data.task_id), { headers: query.headers });
    expect(byToken.status).to.equal(200);

    const hourAgo = Math.floor(Date.now() / 1000) - 3600;
    const bad: [string, number][] = [
      [klingToken(kling, hourAgo), 1004],
      [klingToken({ ...kling, secretKey: 'not-the-secret' }), 1002],
      [klingToken({ ...kling, accessKey: 'ak-demo-unknown' }), 1002],
    ];
    for (const [token, code] of bad) {
      const refused = await fetch(submit.url, { method: 'POST', headers: jwt(token), body: submit.body });
      expect(refused.status).to.equal(401);
      const body = (await refused.json()) as Record<string, unknown>;
      expect(body.code).to.equal(code);
      expect(body.request_id).to.be.a('string').and.not.equal('');
    }
    expect(await balance(dir)).to.equal(START_QUOTA - 175_000);
  });

  it('exits cleanly on SIGTERM', async () => {
    const { code, signal } = await stopDemo(demo!);
    expect({ code, signal }).to.deep.equal({ code: 0, signal: null });
    expect(demo!.stderr()).not.to.match(/"level":"error"/);
  });

  it('keeps the user, the token and the balance across a restart', async () => {
    const first = demo!.printed;
    demo = await startDemo(dir);
    expect(demo.printed.token).to.equal(first.token);
    expect(demo.printed.kling).to.deep.equal(first.kling);
    expect(demo.printed.quota).to.equal(START_QUOTA - 175_000);
    const { code } = await stopDemo(demo);
    expect(code).to.equal(0);
  });

  it('prices every built-in endpoint with examples/pricing.json', () => {
    // A typical request of every endpoint (the schema's defaults), as `kling-relay check` prices it.
    const checked = checkConfiguration({ pricing: join(ROOT, 'examples/pricing.json'), quotaPerUnit: 500_000 });
    expect(checked.unpriced.map((e) => `${e.entry.path}: ${String(e.reason)}`)).to.deep.equal([]);
    const book = new PriceBook(loadPricingRules(join(ROOT, 'examples/pricing.json')));
    // 4K costs Kling 3 units (0.42 USD) a second on kling-v3, several times std and pro: never their price.
    for (const type of ['text2video', 'image2video']) {
      const rule = book.match({ type, model: 'kling-v3', mode: '4k', duration: '5' });
      expect([rule?.pricing_type, rule?.price], `${type} 4k`).to.deep.equal(['per_second', 0.42 * 1.25]);
    }
    // The three types of the README's pricing example are priced.
    const list = JSON.parse(readFileSync(join(ROOT, 'examples/pricing.json'), 'utf8')) as { rules: { type: string }[] };
    expect(list.rules.map((r) => r.type)).to.include.members(['motion-control', 'text-to-audio', 'image-generation']);
  });
});
