/** Constants shared by the bench's processes. */
import type { PricingRule } from '../lib/index.js';
import type { SandboxAccount } from '../lib/sandbox/index.js';

export const BENCH_ACCOUNT: SandboxAccount = { accessKey: 'bench-access-key', secretKey: 'bench-secret-key-0123456789abcdef0123456789' };
export const BENCH_CALLBACK_SECRET = 'bench-callback-secret-0123456789abcdef';
export const BENCH_TOKEN = 'sk-bench-0123456789abcdef';
export const BENCH_USERNAME = 'bench';
/** Callers of the many-callers run, each with a balance row of its own; the first is the bench user. */
export const BENCH_CALLERS = 16;
/** The token and username of caller `i` (0 is the bench user). */
export const callerToken = (i: number): string => (i === 0 ? BENCH_TOKEN : `${BENCH_TOKEN}-${i}`);
export const callerName = (i: number): string => (i === 0 ? BENCH_USERNAME : `${BENCH_USERNAME}-${i}`);
/** Enough for every submit of a long run: 10^15 quota is 2 x 10^9 USD at 500000 per USD. */
export const BENCH_START_QUOTA = 1_000_000_000_000_000;

/**
 * The capped relay's reconciler interval in the dispatch run: the sandbox finishes tasks at once and the
 * bench drops callbacks, so the reconciler's checks are what settle tasks and free their slots.
 */
export const DISPATCH_RECONCILE_MS = 100;

/** A price for every type, as the test harness uses. */
export const BENCH_PRICING: PricingRule[] = [
  { model: '*', type: '*', mode: '*', duration: '*', pricing_type: 'fixed', price: 0.01, currency: 'USD' },
  { model: 'kling-*', type: 'text2video', mode: '*', duration: '*', pricing_type: 'per_second', price: 0.01, currency: 'USD' },
];

/** The small submit body. */
export const SMALL_BODY = JSON.stringify({ model_name: 'kling-v1', prompt: 'a paper boat drifting down a rain gutter', mode: 'std', duration: '5', aspect_ratio: '16:9' });

/**
 * An image2video body whose image is about `bytes` of base64: a real PNG header (1024x768), then filler,
 * so the relay's image checks see a plausible file. No data: prefix: Kling (and so the bare proxy's
 * upstream) refuses one.
 */
export function largeBody(bytes: number): string {
  const header = Buffer.alloc(33);
  header.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  header.writeUInt32BE(1024, 16);
  header.writeUInt32BE(768, 20);
  const raw = Math.floor((bytes * 3) / 4);
  const image = Buffer.concat([header, Buffer.alloc(raw - header.length, 7)]).toString('base64');
  return JSON.stringify({ model_name: 'kling-v1', image, prompt: 'the paper boat turns', duration: '5' });
}

/**
 * A text2video body of at least `bytes`: a valid prompt and an array of zeros beside it, the cheapest body
 * to send per JSON value (two bytes each), for the relay's bound on the work one body can cost.
 */
export function junkBody(bytes: number): string {
  return `{"prompt":"x","junk":[${'0,'.repeat(Math.max(0, Math.ceil((bytes - 25) / 2)))}0]}`;
}
