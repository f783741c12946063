import { expect } from 'chai';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { RelayHttpError } from '../../lib/errors.js';
import { JsonBodyCounter, MAX_JSON_DEPTH, MAX_JSON_VALUES, readJsonBody } from '../../lib/relay/body.js';

/** Feeds `text` to a new counter in chunks of `size` bytes (1: every byte its own chunk). */
function feed(text: string, size: number): void {
  const bytes = Buffer.from(text, 'utf8');
  const counter = new JsonBodyCounter();
  for (let at = 0; at < bytes.length; at += size) counter.feed(bytes.subarray(at, at + size));
}

/** An array of `count` values in all: itself and `count - 1` strings full of escapes, commas, brackets and non-ASCII. */
function arrayOf(count: number): string {
  const item = JSON.stringify('a\\",[{"ü\\\\');
  return `[${Array(count - 1).fill(item).join(',')}]`;
}

/**
 * The count the relay refuses a body by, on bytes split anywhere: a quote escaped by a backslash run
 * that a chunk boundary cuts, a multi-byte character cut in two, brackets and commas inside strings.
 */
describe('lib/relay/body: JSON values counted on the bytes of a body as they arrive', function () {
  it(`takes exactly ${MAX_JSON_VALUES} values and refuses one more, in chunks of every size from 1 byte to the whole body`, function () {
    const most = arrayOf(MAX_JSON_VALUES);
    const over = arrayOf(MAX_JSON_VALUES + 1);
    expect((JSON.parse(most) as unknown[]).length).to.equal(MAX_JSON_VALUES - 1);
    for (const size of [1, 2, 3, 5, 7, 11, 64, 4096, most.length]) {
      expect(() => feed(most, size), `chunks of ${size}`).to.not.throw();
      expect(() => feed(over, size), `chunks of ${size}`).to.throw(`more than ${MAX_JSON_VALUES} JSON values`);
    }
  });

  it('splits a string between every pair of bytes and still sees where it ends', function () {
    const text = JSON.stringify({ a: 'x\\\\\\"y\\\\', b: ['\\"', '{[,', 'ünïcödé'], c: 'tail\\\\' });
    const bytes = Buffer.from(text, 'utf8');
    for (let cut = 1; cut < bytes.length; cut++) {
      // A count thrown off by a cut would either refuse this small body or miss the 33rd level below.
      const counter = new JsonBodyCounter();
      counter.feed(bytes.subarray(0, cut));
      counter.feed(bytes.subarray(cut));
      const deeper = new JsonBodyCounter();
      deeper.feed(bytes.subarray(0, cut));
      deeper.feed(bytes.subarray(cut, bytes.length - 1));
      expect(() => deeper.feed(Buffer.from(`,"d":${'['.repeat(MAX_JSON_DEPTH)}`)), `cut at ${cut}`).to.throw(`deeper than ${MAX_JSON_DEPTH} levels`);
    }
  });
});

describe('lib/relay/body: reading a body', function () {
  /** A request stream carrying `text`, with its Content-Length. */
  function requestOf(text: string): PassThrough & IncomingMessage {
    const stream = new PassThrough() as PassThrough & IncomingMessage;
    Object.assign(stream, { headers: { 'content-length': String(Buffer.byteLength(text)) }, complete: true });
    stream.end(text);
    return stream;
  }

  it("reads a body whose stream's encoding something in front of the relay set, by its bytes", async function () {
    const req = requestOf('{"prompt":"ünïcödé"}');
    req.setEncoding('utf8');
    expect(await readJsonBody(req, 1024)).to.deep.equal({ prompt: 'ünïcödé' });
  });

  it('refuses at once a body something in front of the relay read without parsing it: 400/1200, not a wait for an end that has passed', async function () {
    const req = requestOf('{"prompt":"a kite"}');
    req.resume();
    await new Promise((resolve) => req.once('end', resolve));
    const error = await readJsonBody(req, 1024).then(() => undefined, (e: unknown) => e);
    expect(error).to.be.instanceOf(RelayHttpError);
    expect([(error as RelayHttpError).status, (error as RelayHttpError).klingCode, (error as Error).message]).to.deep.equal([400, 1200, 'could not read the request body: it was read before the relay']);
  });
});
