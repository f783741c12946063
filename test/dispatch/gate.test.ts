import { expect } from 'chai';
import { SlotGate } from '../../lib/dispatch/gate.js';
import type { SlotNeed } from '../../lib/dispatch/slots.js';

const need: SlotNeed = { pack: 'video', model: 'kling-v2-6', slots: 1 };
const other: SlotNeed = { pack: 'video', model: 'kling-v3', slots: 1 };

/** A hold whose outcome the test decides. */
function holding(): { promise: Promise<unknown>; commit(): void; refuse(): void } {
  let commit = (): void => undefined;
  let refuse = (): void => undefined;
  const promise = new Promise((resolve, reject) => {
    commit = () => resolve({});
    refuse = () => reject(new Error('not enough quota'));
  });
  return { promise, commit, refuse };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('SlotGate: the tasks placed whose holds are on their way', () => {
  it('counts a placed task until its hold commits, per model version, as it was when the decision began', async () => {
    const gate = new SlotGate();
    const sent = holding();
    const waits = holding();
    gate.reserve(need, { accountId: 'a', slots: 2, queued: false, userId: '7' }, sent.promise);
    gate.reserve(need, { accountId: 'a', slots: 1, queued: true, userId: '8' }, waits.promise);
    const before = gate.inFlight(need);
    expect([...before.slots]).to.deep.equal([['a', 2]]);
    expect([before.queued, before.ofCaller('7'), before.ofCaller('8'), before.ofCaller('9')]).to.deep.equal([1, 1, 1, 0]);
    expect([...gate.inFlight(other).slots]).to.deep.equal([]);
    sent.commit();
    await tick();
    // A decision that began before the commit keeps what it saw; one that begins after reads it from the database.
    expect([[...before.slots], before.ofCaller('7')]).to.deep.equal([[['a', 2]], 1]);
    const after = gate.inFlight(need);
    expect([[...after.slots], after.queued, after.ofCaller('7')]).to.deep.equal([[], 1, 0]);
  });

  it('forgets a hold that was refused or failed: it placed nothing', async () => {
    const gate = new SlotGate();
    const refused = holding();
    gate.reserve(need, { accountId: 'a', slots: 1, queued: false, userId: '7' }, refused.promise);
    refused.refuse();
    await tick();
    const now = gate.inFlight(need);
    expect([[...now.slots], now.queued, now.ofCaller('7')]).to.deep.equal([[], 0, 0]);
  });
});
