import { expect } from 'chai';
import { createServer } from 'node:net';
import type { KlingAccountInit } from '../../lib/upstream/accounts.js';
import { SANDBOX_PACK_UNITS } from '../../lib/sandbox/account.js';
import { testDatabases } from '../support/databases.js';
import { startHarness, type Harness } from '../support/harness.js';

/** A port nothing listens on: Kling down. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The arrival times of the sandbox's /account/costs requests, by the access key that signed them. */
function costsArrivals(h: Harness): Map<string, number[]> {
  const byKey = new Map<string, number[]>();
  for (const r of h.sandbox.requests.filter((req) => req.path === '/account/costs')) {
    const key = r.accessKey ?? '(unknown)';
    byKey.set(key, [...(byKey.get(key) ?? []), r.at]);
  }
  return byKey;
}

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - (times[i] as number));
}

describe("relay.accounts(): each Kling account's resource packs", function () {
  this.timeout(30_000);
  const database = testDatabases()[0];
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('shows every account\'s packs and what remains, the remaining units falling as tasks consume them', async () => {
    if (!database) throw new Error('no database');
    h = await startHarness(database, { accounts: [{ id: 'jwt' }, { id: 'key', apiKey: true }] });
    const [first] = await h.relay.accounts();
    expect(first?.account).to.equal('jwt');
    const video = first?.packs?.find((p) => p.name === 'Sandbox video pack');
    expect(video).to.include({ total: SANDBOX_PACK_UNITS.video, remaining: SANDBOX_PACK_UNITS.video, status: 'online', type: 'decreasing_total' });

    const user = await h.user(10_000_000);
    const res = await fetch(`${h.url}/kling/v1/videos/text2video`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-user-id': String(user) }, body: JSON.stringify({ prompt: 'a kite', duration: '10' }) });
    const taskId = ((await res.json()) as { data: { task_id: string } }).data.task_id;
    const owner = h.sandbox.tasks.getTask(taskId)?.accessKey;
    h.sandbox.complete(taskId, { status: 'succeed' });

    const after = await h.relay.accounts();
    expect(after.map((a) => a.account)).to.deep.equal(['jwt', 'key']);
    for (const report of after) {
      const left = report.packs?.find((p) => p.name === 'Sandbox video pack')?.remaining;
      const used = h.keys[report.account]?.accessKey === owner ? 2 : 0;
      expect(left, report.account).to.equal(SANDBOX_PACK_UNITS.video - used);
    }
  });

  it('keeps to one /account/costs request a second per account, even when called in a loop and at once', async () => {
    if (!database) throw new Error('no database');
    h = await startHarness(database, { accounts: [{ id: 'a' }, { id: 'b', apiKey: true }] });
    const started = Date.now();
    const reports = [...(await Promise.all([h.relay.accounts(), h.relay.accounts()]))];
    for (let i = 0; i < 2; i++) reports.push(await h.relay.accounts());
    // Four calls of two accounts: every answer came (the sandbox refuses a faster one with 1302).
    for (const report of reports.flat()) expect(report.error, report.account).to.equal(undefined);
    const arrivals = costsArrivals(h);
    expect([...arrivals.keys()].sort()).to.deep.equal([h.keys.a?.accessKey, h.keys.b?.accessKey].sort());
    for (const [key, times] of arrivals) {
      expect(times, key).to.have.length(4);
      for (const gap of gaps(times)) expect(gap, `${key}: ${gaps(times).join(', ')} ms`).to.be.at.least(1_000);
    }
    // The two accounts are paced each on its own, not one after the other.
    expect(Date.now() - started).to.be.below(6_000);
  });

  it('reports a bad key and Kling down per account, and still shows the others', async () => {
    if (!database) throw new Error('no database');
    h = await startHarness(database, { accounts: [{ id: 'good' }, { id: 'revoked', secretKey: 'not-the-key-kling-knows-0123456789abcdef' }] });
    const down = await closedPort();
    const good = h.keys.good;
    if (!good) throw new Error('no keys');
    const accounts: KlingAccountInit[] = [
      { id: 'good', accessKey: good.accessKey, secretKey: good.secretKey, baseUrl: h.sandbox.url },
      { id: 'revoked', accessKey: h.keys.revoked?.accessKey ?? '', secretKey: 'not-the-key-kling-knows-0123456789abcdef', baseUrl: h.sandbox.url },
      { id: 'down', apiKey: 'some-key', baseUrl: `http://127.0.0.1:${down}` },
    ];
    const relay = h.anotherRelay({ accounts });
    try {
      const reports = await relay.accounts();
      expect(reports.map((r) => r.account)).to.deep.equal(['good', 'revoked', 'down']);
      expect(reports[0]?.packs).to.have.length(3);
      expect(reports[1]?.error).to.include({ kind: 'kling', httpStatus: 401, klingCode: 1002 });
      expect(reports[2]?.error).to.include({ kind: 'network' });
      expect(reports[2]?.error?.message).to.match(/ECONNREFUSED/);
    } finally {
      relay.close();
    }
  });

  it('refuses a period that ends before it starts', async () => {
    if (!database) throw new Error('no database');
    h = await startHarness(database);
    let error: unknown;
    await h.relay.accounts({ from: Date.now(), to: Date.now() - 1000 }).catch((e: unknown) => (error = e));
    expect(error).to.be.instanceOf(TypeError);
    expect((error as Error).message).to.match(/^from \(.*\) must not be after to/);
    expect(h.sandbox.requests).to.have.length(0);
  });
});
