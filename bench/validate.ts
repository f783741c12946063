/**
 * Time to validate a small text2video body and a 10 MB base64 image2video body (data: prefix
 * stripped), with the validator the relay builds at start-up. Targets on a 2-core machine:
 * < 0.2 ms and < 20 ms. `npm run bench:validate`
 */
import { performance } from 'node:perf_hooks';
import { deflateSync } from 'node:zlib';
import { loadRegistry } from '../lib/registry/load.js';
import { createValidator } from '../lib/validation/index.js';

function pngOfSize(bytes: number): string {
  // A real PNG header (1024x768) followed by filler, so the image checks see a plausible file.
  const header = Buffer.alloc(33);
  header.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  header.writeUInt32BE(1024, 16);
  header.writeUInt32BE(768, 20);
  const filler = deflateSync(Buffer.alloc(16)).subarray(0, 0);
  return Buffer.concat([header, filler, Buffer.alloc(bytes - header.length, 7)]).toString('base64');
}

function measure(label: string, iterations: number, make: () => unknown, run: (body: unknown) => boolean, targetMs: number): boolean {
  for (let i = 0; i < Math.min(50, iterations); i++) run(make());
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const body = make();
    const start = performance.now();
    const ok = run(body);
    times.push(performance.now() - start);
    if (!ok) throw new Error(`${label}: the body did not validate`);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)] ?? 0;
  const p99 = times[Math.floor(times.length * 0.99)] ?? 0;
  const pass = median < targetMs;
  console.log(`${label.padEnd(42)} median ${median.toFixed(4)} ms   p99 ${p99.toFixed(4)} ms   target < ${targetMs} ms   ${pass ? 'ok' : 'MISSED'}`);
  return pass;
}

const validator = createValidator(loadRegistry(undefined));
const smoke = process.argv.includes('--smoke');
const image = `data:image/png;base64,${pngOfSize(10 * 1024 * 1024 * 0.74)}`;
console.log(`image2video body: ${(image.length / 1024 / 1024).toFixed(1)} MB of base64 (about 7.4 MB decoded)`);

const results = [
  measure('text2video, small body', smoke ? 100 : 20_000, () => ({ prompt: 'a cat surfing a wave at sunset', duration: '10', mode: 'pro' }), (b) => validator.validate('/v1/videos/text2video', b).ok, 0.2),
  measure('image2video, 10 MB base64 with data: prefix', smoke ? 5 : 100, () => ({ image, prompt: 'the cat turns its head' }), (b) => {
    const r = validator.validate('/v1/videos/image2video', b);
    return r.ok && (r.body.image as string).length === image.length - 'data:image/png;base64,'.length;
  }, 20),
];
if (!smoke && results.includes(false)) process.exitCode = 1;
