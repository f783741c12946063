import { expect } from 'chai';
import type { Harness } from './harness.js';

/** A refused video submit left nothing behind: no host row, task or ledger row, the balance whole, nothing sent to Kling. */
export async function expectNothingLeft(harness: Harness, user: number, balance: number): Promise<void> {
  expect(await harness.rows('videos')).to.deep.equal([]);
  expect(await harness.tasks()).to.deep.equal([]);
  expect(await harness.ledger()).to.deep.equal([]);
  expect(await harness.balance(user)).to.equal(balance);
  expect(harness.creates()).to.deep.equal([]);
}
