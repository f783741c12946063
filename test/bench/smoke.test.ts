import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResults, Figures } from '../../bench/results.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Both servers answered, and only with 2xx: what a smoke run can check without judging speed. */
function answered(figures: Figures, what: string): void {
  expect(figures.ok, `${what}: 2xx answers`).to.be.greaterThan(0);
  expect(figures.non2xx, `${what}: non-2xx answers`).to.equal(0);
  expect(figures.errors, `${what}: connection errors`).to.equal(0);
  for (const key of ['rps', 'p50', 'p99'] as const) expect(figures[key], `${what}: ${key}`).to.be.a('number').and.at.least(0);
}

describe('npm run bench (smoke run, BENCH_QUICK=1)', function () {
  // A quick run starts five server processes and drives each for about a second per scenario.
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kling-relay-bench-smoke-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('measures relay and bare proxy, prints the table and writes the results file', async () => {
    const out = join(dir, 'results.json');
    const env: NodeJS.ProcessEnv = { ...process.env, BENCH_QUICK: '1', BENCH_OUT: out };
    delete env.BENCH_MYSQL_URL;
    delete env.BENCH_PG_URL;
    delete env.BENCH_PROFILE;
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, `exit code; stderr:\n${stderr}`).to.equal(0);
    expect(stdout).to.include('text2video submit, small body').and.include('query of a finished task').and.include('targets');

    const results = JSON.parse(readFileSync(out, 'utf8')) as BenchResults;
    expect(results.quick).to.equal(true);
    expect(results.machine.node).to.equal(process.version);
    expect(results.machine.cpus).to.be.greaterThan(0);
    expect(results.submit.map((r) => `${r.database}/${r.connections}`)).to.deep.equal(['sqlite/16']);
    for (const row of [...results.submit, ...results.query]) {
      answered(row.relay, `relay ${row.database} x${row.connections}`);
      answered(row.bare, `bare ${row.database} x${row.connections}`);
      expect(row.ratio).to.be.greaterThan(0);
      // The CPU a request costs the server, the whole machine (at least the server's share), and the
      // database server processes (none on SQLite, where the database is the server's own process;
      // read from /proc, so only on Linux).
      for (const figures of [row.relay, row.bare]) {
        expect(figures.cpuUsPerRequest, 'server CPU per request').to.be.a('number').and.greaterThan(0);
        expect(figures.machineCpuUsPerRequest, 'machine CPU per request').to.be.a('number').and.at.least(figures.cpuUsPerRequest ?? 0);
        if (process.platform === 'linux') expect(figures.databaseCpuUsPerRequest, 'database server CPU per request').to.be.a('number').and.at.least(0);
      }
    }
    // Every caller's token is known to the bench host: a 401 for any of them would show as a non-2xx.
    expect(results.submitManyCallers.map((r) => `${r.database}/${r.connections}/${r.callers}`)).to.deep.equal(['sqlite/16/16']);
    for (const row of results.submitManyCallers) {
      answered(row.relay, `relay, ${row.callers} callers`);
      answered(row.bare, `bare, ${row.callers} callers`);
    }
    expect(results.submitAtRate.map((r) => `${r.database}/${r.connections}`)).to.deep.equal(['sqlite/16']);
    for (const row of results.submitAtRate) {
      expect(row.offeredRps).to.be.a('number').and.greaterThan(0);
      answered(row.relay, `relay at ${row.offeredRps} r/s`);
      answered(row.bare, `bare at ${row.offeredRps} r/s`);
      expect(row.addedP99Ms).to.be.a('number');
    }
    expect(results.query).to.have.length(1);
    const large = results.largeBody;
    if (large === undefined) throw new Error('the 10 MB body run is missing');
    expect(large.bodyBytes).to.be.greaterThan(10 * 1024 * 1024);
    answered(large.relay.latency, 'relay, 10 MB body');
    answered(large.bare.latency, 'bare, 10 MB body');
    expect(large.relay.peakGrowthBytes).to.be.a('number').and.at.least(0);
    expect(results.tableSizes.map((t) => t.rows)).to.deep.equal([100, 1000]);
    for (const t of results.tableSizes) answered(t.relay, `relay with ${t.rows} rows`);
    const junk = results.junkBody;
    if (junk === undefined) throw new Error('the junk body run is missing');
    expect(junk.bodyBytes).to.be.greaterThan(10 * 1024 * 1024);
    expect([junk.refused, junk.answeringAfter]).to.deep.equal([junk.requests, true]);
    expect(junk.peakGrowthBytes).to.be.a('number').and.at.least(0);
    // Two relay processes share a server database; without BENCH_MYSQL_URL/BENCH_PG_URL there is none.
    expect(results.twoProcess).to.deep.equal([]);
    // The capped relay beside the same relay settling without a cap, the uncapped one and the bare proxy;
    // every answer of the capped relay is either queued or sent at once.
    expect(results.dispatch.map((d) => `${d.database}/${d.connections}/${d.cap}`)).to.deep.equal(['sqlite/16/2048']);
    for (const d of results.dispatch) {
      expect(d.capped.refused, 'capped relay: answers other than 2xx, by status and code').to.deep.equal({});
      answered(d.capped, 'capped relay');
      answered(d.settling, 'relay settling without a cap');
      answered(d.uncapped, 'uncapped relay');
      answered(d.bare, 'bare, beside the capped relay');
      expect(d.capped.queued + d.capped.sentAtOnce, 'queued + sent at once').to.equal(d.capped.ok);
      expect(d.reconcilerIntervalMs).to.be.greaterThan(0);
      expect(d.ratio).to.be.greaterThan(0);
      expect(d.addedP99Ms).to.be.a('number');
      // The reconciler settles each settling relay's tasks, so after the run none is left active, and
      // the CPU counting those settlements is at least the run's.
      expect(d.unsettled, 'tasks still active after the run').to.equal(0);
      expect(d.settling.unsettled, "the settling relay's tasks still active after the run").to.equal(0);
      expect(d.capped.cpuUsPerRequestSettled).to.be.at.least(d.capped.cpuUsPerRequest ?? 0);
      expect(d.settling.cpuUsPerRequestSettled).to.be.at.least(d.settling.cpuUsPerRequest ?? 0);
    }
    expect(results.lookups.map((l) => l.tasks)).to.deep.equal([100, 1000]);
    for (const l of results.lookups) answered(l.relay, `relay, a caller with ${l.tasks} tasks`);
    expect(results.targets.map((t) => t.target)).to.deep.equal(['>= 50%', '<= 10 ms', '<= 10 ms', '>= 70%', '<= 50 ms', '< 4x the body', '<= valid', 'flat', 'flat']);
    for (const t of results.targets) expect(t.met, t.name).to.be.a('boolean');
  });
});
