import { expect } from 'chai';
import { ACCOUNT_ASIDE_MS, LEARNED_CAP_MS, SlotBoard, type SlotNeed } from '../../lib/dispatch/slots.js';

const V3: SlotNeed = { pack: 'video', model: 'kling-v3', slots: 1 };
const V3_IMAGES: SlotNeed = { pack: 'image', model: 'kling-v3', slots: 2 };
const V26: SlotNeed = { pack: 'video', model: 'kling-v2-6', slots: 1 };

describe('dispatch: the caps in force per account and model version', () => {
  let now = 1_000_000;
  const clock = () => now;
  const board = () => new SlotBoard([{ id: 'a', concurrency: { 'kling-v3': 5, default: 2 } }, { id: 'b' }], clock);

  it('takes the configured cap per model version, the default for the others, and none for an account without one', () => {
    const b = board();
    expect([b.cap('a', V3), b.cap('a', V26), b.cap('b', V3)]).to.deep.equal([5, 2, Infinity]);
    expect([b.fits('a', V3, 4), b.fits('a', V3, 5), b.fits('a', V3_IMAGES, 3), b.fits('a', V3_IMAGES, 4)]).to.deep.equal([true, false, true, false]);
    expect(b.limited(V3)).to.equal(true);
    expect(new SlotBoard([{ id: 'b' }], clock).limited(V3)).to.equal(false);
  });

  it('lowers a cap after a 1303 to the slots that ran, raises it with each accepted create, and forgets it after a minute', () => {
    const b = board();
    b.refused('a', V3, 2);
    expect(b.cap('a', V3)).to.equal(2);
    // Only that model version and pack type.
    expect([b.cap('a', V26), b.cap('a', V3_IMAGES)]).to.deep.equal([2, 5]);
    b.accepted('a', V3);
    expect(b.cap('a', V3)).to.equal(3);
    b.accepted('a', V3);
    b.accepted('a', V3);
    expect(b.cap('a', V3)).to.equal(5);
    b.refused('b', V3, 0);
    expect([b.cap('b', V3), b.fits('b', V3, 0), b.limited(V26)]).to.deep.equal([0, false, true]);
    now += LEARNED_CAP_MS;
    expect(b.cap('b', V3)).to.equal(Infinity);
  });

  it('sets an account aside for a while, saying true only the first time', () => {
    const b = board();
    expect([b.setAside('a'), b.setAside('a')]).to.deep.equal([true, false]);
    expect(b.fits('a', { ...V3, slots: 0 }, 0)).to.equal(false);
    now += ACCOUNT_ASIDE_MS;
    expect([b.isAside('a'), b.fits('a', V3, 0)]).to.deep.equal([false, true]);
  });
});
