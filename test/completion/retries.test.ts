import { expect } from 'chai';
import { Retries } from '../../lib/task/retries.js';
import type { Logger } from '../../lib/logger.js';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A logger that keeps its lines. */
function recording(): { logger: Logger; lines: [string, string, Record<string, unknown>][] } {
  const lines: [string, string, Record<string, unknown>][] = [];
  const keep = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push([level, message, fields ?? {}]);
  return { logger: { error: keep('error'), warn: keep('warn'), info: keep('info'), debug: keep('debug') }, lines };
}

describe('task/Retries: writes tried again in the background', () => {
  it('tries after each delay until the write succeeds, then stops, logging each failure and the success', async () => {
    const { logger, lines } = recording();
    const retries = new Retries(logger, [10, 20, 30]);
    let calls = 0;
    retries.schedule('a write', { taskId: 7 }, async () => {
      calls++;
      if (calls < 2) throw new Error('refused');
    });
    expect(calls, 'nothing at once').to.equal(0);
    await pause(150);
    expect(calls).to.equal(2);
    expect(lines.map(([level, message, fields]) => [level, message, fields.taskId, fields.tries])).to.deep.equal([
      ['error', 'a write: failed again, tried later', 7, 2],
      ['info', 'a write: written on a later try', 7, 3],
    ]);
  });

  it('gives up after the last delay and says the reconciler is left', async () => {
    const { logger, lines } = recording();
    const retries = new Retries(logger, [5, 5]);
    let calls = 0;
    retries.schedule('a write', {}, () => {
      calls++;
      return Promise.reject(new Error('refused'));
    });
    await pause(100);
    expect(calls).to.equal(2);
    expect(lines.map(([, message]) => message)).to.deep.equal(['a write: failed again, tried later', 'a write: failed again, left to the reconciler']);
  });

  it('makes no try once closed, whether scheduled before or after', async () => {
    const { logger } = recording();
    const retries = new Retries(logger, [20]);
    let calls = 0;
    retries.schedule('a write', {}, async () => void calls++);
    retries.close();
    retries.schedule('another write', {}, async () => void calls++);
    await pause(60);
    expect(calls).to.equal(0);
  });
});
