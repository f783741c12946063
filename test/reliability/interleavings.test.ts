import { expect } from 'chai';
import express from 'express';
import fc from 'fast-check';
import request from 'supertest';
import { callbackToken } from '../../lib/completion/token.js';
import type { TaskStatus } from '../../lib/sandbox/index.js';
import { testDatabases } from '../support/databases.js';
import { CALLBACK_SECRET, checkAndClose, startHarness, type Harness } from '../support/harness.js';

/** How far along a state is: a task's state may only climb, and a final state never changes. */
const RANK: Record<string, number> = { pending: 0, submitted: 1, processing: 2, succeed: 3, failed: 3 };
const FINAL = new Set(['succeed', 'failed']);
const TASKS = 3;

/** One thing that can happen to a task, at Kling or at the relay. */
type Step =
  | { kind: 'kling-progress'; task: number }
  | { kind: 'kling-finish'; task: number; ok: boolean }
  | { kind: 'notice'; task: number; status: TaskStatus; copies: number }
  | { kind: 'refresh'; task: number }
  | { kind: 'reconcile' }
  | { kind: 'race'; task: number };

const task = fc.integer({ min: 0, max: TASKS - 1 });
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('kling-progress' as const), task }),
  fc.record({ kind: fc.constant('kling-finish' as const), task, ok: fc.boolean() }),
  // Any status, whatever Kling's truth: late, reordered and lying notices (with a valid token) alike.
  fc.record({ kind: fc.constant('notice' as const), task, status: fc.constantFrom<TaskStatus>('submitted', 'processing', 'succeed', 'failed'), copies: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('refresh' as const), task }),
  fc.record({ kind: fc.constant('reconcile' as const) }),
  fc.record({ kind: fc.constant('race' as const), task }),
);

/** A relay task row and the host row it keeps in step, as the tests read them. */
interface Pair {
  task: { state: string; hold_quota: number | string; charge_quota: number | string | null; result: string | null; status_msg: string | null; host_row_id: number | string };
  host: { status: string; quota: number | string; result: string | null; fail_reason: string | null };
}

async function pairOf(h: Harness, rowId: number): Promise<Pair> {
  const task = (await h.db('kling_relay_tasks').where({ id: rowId }).first()) as Pair['task'];
  const host = (await h.db('videos').where({ id: task.host_row_id }).first()) as Pair['host'];
  return { task, host };
}

/**
 * The host row says what the relay's task row says, as the transition wrote it: the same status,
 * the hold until the task is final, then the charge and the result (succeed) or 0 and the reason (failed).
 */
async function expectHostRowAgrees(h: Harness, rowId: number, name: string): Promise<void> {
  const { task, host } = await pairOf(h, rowId);
  expect(host.status, `${name}: host row status`).to.equal(task.state);
  if (task.state === 'succeed') {
    expect(Number(host.quota), `${name}: host row quota`).to.equal(Number(task.charge_quota));
    expect(host.result, `${name}: host row result`).to.equal(task.result);
  } else if (task.state === 'failed') {
    expect(Number(host.quota), `${name}: host row quota`).to.equal(0);
    expect(host.fail_reason, `${name}: host row fail_reason`).to.equal(task.status_msg);
  } else {
    expect(Number(host.quota), `${name}: host row quota`).to.equal(Number(task.hold_quota));
  }
}

/** FC_SEED replays a run: fast-check generates the same steps from the same seed. */
function propertySeed(): number {
  const given = process.env.FC_SEED;
  if (given !== undefined && given !== '') {
    const seed = Number(given);
    if (!Number.isSafeInteger(seed)) throw new Error(`FC_SEED must be an integer, not ${given}`);
    return seed;
  }
  return Math.floor(Math.random() * 0x7fffffff);
}

for (const database of testDatabases()) {
  describe(`random interleavings of notices, refreshes and reconciles on ${database.name}`, function () {
    this.timeout(60_000);
    let h: Harness;
    let callbackApp: express.Express;

    before(async () => {
      h = await startHarness(database);
      // The relay's callback is driven by the test's own notices; the sandbox's would go nowhere.
      h.sandbox.callbackMode({ drop: true });
      callbackApp = express().post('/kling/callback', h.relay.callback);
    });
    after(async () => checkAndClose(h));

    it('status never goes back, final states agree with Kling, at most one terminal ledger row, quota = start + sum(ledger)', async () => {
      const seed = propertySeed();
      // Printed up front, as a run that hangs or crashes never reaches fast-check's own report.
      console.log(`      fast-check seed ${seed} on ${database.name} (FC_SEED=${seed} replays it)`);
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 14 }), async (steps) => {
          const user = await h.user(1_000_000);
          const tasks: { klingId: string; externalId: string; rowId: number }[] = [];
          for (let i = 0; i < TASKS; i++) {
            const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: `kite ${i}` });
            expect(res.status).to.equal(200);
            const row = (await h.db('kling_relay_tasks').where({ kling_task_id: res.body.data.task_id }).first()) as { id: number; external_task_id: string };
            tasks.push({ klingId: res.body.data.task_id as string, externalId: row.external_task_id, rowId: Number(row.id) });
          }
          const seen: string[][] = tasks.map(() => []);
          const observe = async (): Promise<void> => {
            for (const [i, t] of tasks.entries()) {
              const row = (await h.db('kling_relay_tasks').where({ id: t.rowId }).first()) as { state: string };
              const states = seen[i] ?? [];
              const last = states[states.length - 1];
              if (last !== undefined) {
                expect(RANK[row.state], `task ${i}: ${[...states, row.state].join(' -> ')}`).to.be.at.least(RANK[last] ?? 0);
                if (FINAL.has(last)) expect(row.state, `task ${i}: a final state is final`).to.equal(last);
              }
              if (last !== row.state) states.push(row.state);
              // The relay settles only on what Kling really says.
              if (FINAL.has(row.state)) expect(h.sandbox.tasks.getTask(t.klingId)?.status, `task ${i}`).to.equal(row.state);
              await expectHostRowAgrees(h, t.rowId, `task ${i}`);
            }
            await h.assertLedger();
          };
          const notice = (i: number, status: TaskStatus) => {
            const t = tasks[i];
            if (!t) throw new Error(`no task ${i}`);
            const body = { task_id: t.klingId, task_status: status, task_status_msg: '', task_info: { external_task_id: t.externalId }, created_at: Date.now(), updated_at: Date.now() };
            return request(callbackApp).post(`/kling/callback?token=${callbackToken(CALLBACK_SECRET, t.externalId)}`).send(body);
          };
          const refresh = async (i: number) => {
            const t = tasks[i];
            if (!t) throw new Error(`no task ${i}`);
            // The task counts as not checked lately, so the query asks Kling.
            await h.db('kling_relay_tasks').where({ id: t.rowId }).update({ checked_at: 0 });
            const res = await request(h.url).get(`/kling/v1/videos/text2video/${t.klingId}`).set('X-User-Id', String(user));
            expect(res.status).to.equal(200);
          };
          const reconcile = async () => {
            await h.db('kling_relay_tasks').whereIn('id', tasks.map((t) => t.rowId)).update({ next_check_at: 0 });
            await h.relay.reconcile();
          };

          for (const s of steps) {
            const kling = 'task' in s ? h.sandbox.tasks.getTask(tasks[s.task]?.klingId ?? '') : undefined;
            const klingFinal = kling !== undefined && (kling.status === 'succeed' || kling.status === 'failed');
            switch (s.kind) {
              case 'kling-progress':
                if (!klingFinal && kling?.status === 'submitted') h.sandbox.setStatus(kling.taskId, 'processing');
                break;
              case 'kling-finish':
                if (!klingFinal && kling) h.sandbox.complete(kling.taskId, s.ok ? { status: 'succeed' } : { status: 'failed', message: 'moderation' });
                break;
              case 'notice': {
                const answers = await Promise.all(Array.from({ length: s.copies }, () => notice(s.task, s.status)));
                for (const a of answers) expect(a.status, JSON.stringify(s)).to.equal(200);
                break;
              }
              case 'refresh':
                await refresh(s.task);
                break;
              case 'reconcile':
                await reconcile();
                break;
              case 'race':
                await Promise.all([notice(s.task, kling?.status ?? 'succeed'), refresh(s.task), reconcile()]);
                break;
            }
            await observe();
          }
          // Whatever happened, a last pass after Kling has finished every task settles each of them once.
          for (const t of tasks) {
            const k = h.sandbox.tasks.getTask(t.klingId);
            if (k && k.status !== 'succeed' && k.status !== 'failed') h.sandbox.complete(t.klingId, { status: 'succeed' });
          }
          await reconcile();
          await observe();
          for (const states of seen) expect(FINAL.has(states[states.length - 1] ?? '')).to.equal(true);
        }),
        { numRuns: 12, seed },
      );
    });

    it("a late submitted notice for a task already processing leaves it processing: relay row, host row and the caller's query", async () => {
      const user = await h.user(1_000_000);
      const res = await request(h.url).post('/kling/v1/videos/text2video').set('X-User-Id', String(user)).send({ prompt: 'a late kite' });
      expect(res.status).to.equal(200);
      const klingId = res.body.data.task_id as string;
      const row = (await h.db('kling_relay_tasks').where({ kling_task_id: klingId }).first()) as { id: number; external_task_id: string };
      h.sandbox.setStatus(klingId, 'processing');
      for (const status of ['processing', 'submitted'] as const) {
        const body = { task_id: klingId, task_status: status, task_status_msg: '', task_info: { external_task_id: row.external_task_id }, created_at: Date.now(), updated_at: Date.now() };
        const answer = await request(callbackApp).post(`/kling/callback?token=${callbackToken(CALLBACK_SECRET, row.external_task_id)}`).send(body);
        expect(answer.status, status).to.equal(200);
      }
      const { task, host } = await pairOf(h, Number(row.id));
      expect(task.state).to.equal('processing');
      expect(host.status).to.equal('processing');
      // Checked just now: the query answers from the relay's row, not from a fresh look at Kling.
      await h.db('kling_relay_tasks').where({ id: row.id }).update({ checked_at: Date.now() });
      const query = await request(h.url).get(`/kling/v1/videos/text2video/${klingId}`).set('X-User-Id', String(user));
      expect(query.body.data.task_status).to.equal('processing');
      expect(h.sandbox.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/${klingId}`))).to.have.length(0);
    });
  });
}
