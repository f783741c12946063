import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { testDatabases } from '../support/databases.js';
import { checkAndClose, startHarness, type Harness } from '../support/harness.js';

const GUIDE = fileURLToPath(new URL('../../docs/pricing.md', import.meta.url));
const EXAMPLE_PRICES = fileURLToPath(new URL('../../examples/pricing.json', import.meta.url));
const START = 100_000_000;

interface WorkedExample {
  name: string;
  path: string;
  body: Record<string, unknown>;
  /** The seconds Kling's result reports, when the example names them. */
  duration: string | undefined;
  /** The units Kling reports it deducted: v1's `final_unit_deduction`, the standard family's `billing[]` unit `amount`. */
  units: string;
  hold: number;
  charge: number;
}

function cells(line: string): string[] {
  return line.split(/(?<!\\)\|/).slice(1, -1).map((cell) => cell.trim());
}

function boldNumber(cell: string, what: string): number {
  const all = [...cell.matchAll(/\*\*(\d+)\*\*/g)];
  const last = all[all.length - 1];
  if (!last) throw new Error(`docs/pricing.md: no **figure** in the ${what} cell "${cell}"`);
  return Number(last[1]);
}

function resultValue(cell: string, key: string): string | undefined {
  return new RegExp('`' + key.replace('.', '\\.') + '=([^`]+)`').exec(cell)?.[1];
}

/** Whether a path is the standard family's (`/<product>/<model>`): answered as `{id, status, billing[]}`. */
function standard(path: string): boolean {
  return !path.startsWith('/v1/');
}

/** The "Worked examples" table of docs/pricing.md: the figures the guide states. */
function workedExamples(): WorkedExample[] {
  const text = readFileSync(GUIDE, 'utf8');
  const section = text.slice(text.indexOf('## Worked examples'));
  const rows = section.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| Request') && !line.startsWith('|---'));
  return rows.map((line) => {
    const [name, request, result, hold, charge] = cells(line) as [string, string, string, string, string];
    const code = [...request.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
    const [method, path] = (code[0] ?? '').split(' ');
    if (method !== 'POST' || !path) throw new Error(`docs/pricing.md: "${name}" names no POST path`);
    const deducted = standard(path) ? 'billing.amount' : 'final_unit_deduction';
    const units = resultValue(result, deducted);
    if (units === undefined) throw new Error(`docs/pricing.md: "${name}" states no ${deducted}`);
    return {
      name,
      path,
      body: JSON.parse(code[1] ?? '') as Record<string, unknown>,
      duration: resultValue(result, 'duration'),
      units,
      hold: boldNumber(hold, 'hold'),
      charge: boldNumber(charge, 'charge'),
    };
  });
}

const EXAMPLES = workedExamples();

describe('docs/pricing.md worked examples', () => {
  it('has one of each kind the guide promises', () => {
    expect(EXAMPLES.map((e) => e.path)).to.include.members([
      '/v1/videos/text2video',
      '/v1/videos/image2video',
      '/v1/videos/omni-video',
      '/v1/images/omni-image',
      '/v1/images/generations',
      '/v1/videos/advanced-lip-sync',
      '/v1/videos/motion-control',
      '/v1/audio/text-to-audio',
      '/text-to-video/kling-3.0-turbo',
      '/text-to-video/kling-3.0',
      '/image-to-video/kling-3.0',
      '/omni-video/kling-3.0-omni',
      '/omni-video/kling-o1',
      '/image-to-video/kling-2.6',
      '/motion-control/kling-3.0',
      '/text-to-video/kling-2.5-turbo',
    ]);
    expect(EXAMPLES.length).to.equal(24);
  });
});

for (const database of testDatabases()) {
  describe(`docs/pricing.md worked examples through the relay on ${database.name}`, function () {
    let h: Harness;
    before(async () => {
      // An API key serves both families (the standard family takes no key pair).
      h = await startHarness(database, { accounts: [{ id: 'keyed', apiKey: true }], relay: { pricing: EXAMPLE_PRICES } });
    });
    after(async () => checkAndClose(h));

    for (const example of EXAMPLES) {
      it(`${example.name}: holds ${example.hold}, charges ${example.charge}, as the guide says`, async () => {
        const user = await h.user(START);
        const res = await request(h.url).post(`/kling${example.path}`).set('X-User-Id', String(user)).send(example.body);
        expect(res.status, JSON.stringify(res.body)).to.equal(200);
        expect(START - (await h.balance(user)), 'hold').to.equal(example.hold);

        const taskId = (standard(example.path) ? res.body.data.id : res.body.data.task_id) as string;
        h.sandbox.complete(taskId, example.duration === undefined ? { status: 'succeed' } : { status: 'succeed', duration: example.duration });
        if (standard(example.path)) {
          const done = await request(h.url).get(`/kling/tasks?task_ids=${taskId}`).set('X-User-Id', String(user));
          const [task] = done.body.data as Record<string, unknown>[];
          expect(task?.status, JSON.stringify(done.body)).to.equal('succeeded');
          expect(task?.billing, "Kling's billing").to.deep.equal([{ charge_type: 'unit', amount: example.units, package_type: 'video' }]);
        } else {
          const done = await request(h.url).get(`/kling${example.path}/${taskId}`).set('X-User-Id', String(user));
          expect(done.body.data.task_status, JSON.stringify(done.body)).to.equal('succeed');
          expect(done.body.data.final_unit_deduction, "Kling's deduction").to.equal(example.units);
        }
        expect(START - (await h.balance(user)), 'charge').to.equal(example.charge);

        const [task] = (await h.tasks()).filter((t) => t.kling_task_id === taskId);
        const ledger = (await h.ledger()).filter((l) => Number(l.task_id) === Number(task?.id)).map((l) => [l.kind, Number(l.amount)]);
        expect(ledger).to.deep.equal([['hold', -example.hold], ['settle', example.hold - example.charge]]);
      });
    }
  });
}
