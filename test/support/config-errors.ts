import { expect } from 'chai';
import { createKlingRelay, KlingRelayConfigError, type KlingRelayOptions } from '../../lib/index.js';

/** Asserts that createKlingRelay refuses `options` with the coded config error `code`, its message naming each fragment. */
export function refused(options: unknown, code: string, ...fragments: string[]): void {
  let caught: unknown;
  try {
    createKlingRelay(options as KlingRelayOptions);
  } catch (error) {
    caught = error;
  }
  expect(caught, code).to.be.instanceOf(KlingRelayConfigError);
  expect((caught as KlingRelayConfigError).code).to.equal(code);
  for (const fragment of fragments) expect((caught as Error).message).to.include(fragment);
}
