import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KlingRelayConfigError } from '../../lib/errors.js';
import { PriceBook, actualCharge, loadPricingRules, parseDuration, quote, type PricingRule } from '../../lib/pricing/index.js';
import { loadRegistry } from '../../lib/registry/load.js';

const registry = loadRegistry(undefined);
const entry = (path: string) => {
  const e = registry.byPath.get(path);
  if (!e) throw new Error(path);
  return e;
};
const QPU = 500_000;

/** The three examples of seed 004 section 4.2, verbatim. */
const SEED_RULES: PricingRule[] = [
  { model: 'kling-*', type: 'motion-control', mode: '*', duration: '*', pricing_type: 'per_second', price: 0.001, currency: 'USD' },
  { model: 'kling-*', type: 'text-to-audio', mode: '*', duration: '*', pricing_type: 'per_second', price: 0.0008, currency: 'USD' },
  { model: 'kling-*', type: 'image-generation', mode: '*', duration: '0', pricing_type: 'fixed', price: 0.02, currency: 'USD' },
];

function priced(path: string, body: Record<string, unknown>, rules: PricingRule[] = SEED_RULES) {
  const r = quote(entry(path), body, new PriceBook(rules), QPU);
  if (!r.ok) throw new Error(r.reason);
  return r.quote;
}

describe('pricing', () => {
  it("prices the seed's examples unchanged", () => {
    const motion = priced('/v1/videos/motion-control', { model_name: 'kling-v2-6', mode: 'std' });
    expect(motion).to.include({ pricingType: 'per_second', seconds: 30, units: 30, quota: Math.round(0.001 * 30 * QPU), model: 'kling-v2-6', durationKey: '0' });
    const audio = priced('/v1/audio/text-to-audio', { prompt: 'rain', duration: 7.5 });
    expect(audio).to.include({ model: 'kling-text-to-audio', seconds: 7.5, quota: Math.round(0.0008 * 7.5 * QPU), durationKey: '7.5' });
    const image = priced('/v1/images/generations', { model_name: 'kling-v1', prompt: 'x', n: 3 });
    expect(image).to.include({ pricingType: 'fixed', units: 1, quota: 10_000 });
  });

  it('lets the most specific rule win and ties go to the first', () => {
    const rules: PricingRule[] = [
      { model: '*', type: 'text2video', mode: '*', duration: '*', pricing_type: 'per_second', price: 0.1 },
      { model: 'kling-v2*', type: 'text2video', mode: '*', duration: '*', pricing_type: 'per_second', price: 0.2 },
      { model: 'kling-v2-master', type: 'text2video', mode: 'pro', duration: '*', pricing_type: 'per_second', price: 0.3 },
      { model: 'kling-v2-master', type: 'text2video', mode: '*', duration: '10', pricing_type: 'per_second', price: 0.4 },
      { model: 'kling-v2-master', type: 'text2video', mode: '*', duration: '10', pricing_type: 'per_second', price: 0.5 },
    ];
    const t2v = (model: string, mode: string, duration: string) => priced('/v1/videos/text2video', { model_name: model, mode, duration }, rules).unitPrice;
    expect(t2v('kling-v1', 'std', '5')).to.equal(0.1);
    expect(t2v('kling-v2-1-master', 'std', '5')).to.equal(0.2);
    expect(t2v('kling-v2-master', 'pro', '5')).to.equal(0.3);
    expect(t2v('kling-v2-master', 'std', '10')).to.equal(0.4);
    expect(priced('/v1/videos/text2video', { model_name: 'kling-v2-master', mode: 'std', duration: '10' }, rules).quota).to.equal(Math.round(0.4 * 10 * QPU));
  });

  it('prices per image by n, or by series_amount for a series', () => {
    const rules: PricingRule[] = [{ type: 'omni-image', pricing_type: 'per_image', price: 0.01 }];
    expect(priced('/v1/images/omni-image', { prompt: 'x', n: 3, result_type: 'single', series_amount: 4 }, rules)).to.include({ units: 3, quota: 15_000 });
    expect(priced('/v1/images/omni-image', { prompt: 'x', n: 1, result_type: 'series', series_amount: 6 }, rules)).to.include({ units: 6, quota: 30_000 });
  });

  it('holds for the largest series, 9 images, when series_amount is auto, and charges the images delivered', () => {
    const rules: PricingRule[] = [{ type: 'omni-image', pricing_type: 'per_image', price: 0.01 }];
    const auto = priced('/v1/images/omni-image', { prompt: 'x', n: 1, result_type: 'series', series_amount: 'auto' }, rules);
    expect(auto).to.include({ units: 9, quota: 45_000 });
    expect(actualCharge(auto.quota, { type: auto.pricingType, unit: auto.unitPrice }, { series_images: [{}, {}, {}] }, QPU)).to.deep.equal({ charge: 15_000, units: 3 });
  });

  it('refuses a request no rule prices, naming the type and model', () => {
    const r = quote(entry('/v1/videos/text2video'), { model_name: 'kling-v3' }, new PriceBook(SEED_RULES), QPU);
    expect(r).to.deep.equal({ ok: false, reason: "no pricing rule for type 'text2video' and model 'kling-v3'" });
  });

  it('reads a rules file and refuses an invalid one with a coded error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kling-pricing-'));
    const good = join(dir, 'pricing.json');
    writeFileSync(good, JSON.stringify(SEED_RULES));
    expect(loadPricingRules(good)).to.deep.equal(SEED_RULES);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify([{ type: 'tts', price: -1 }]));
    expect(() => loadPricingRules(bad)).to.throw(KlingRelayConfigError, /bad\.json at \/0\/price: must be >= 0/).with.property('code', 'ERR_KLING_RELAY_PRICING_INVALID');
    expect(() => loadPricingRules([{ type: 'tts', price: 1, currency: 'EUR' }])).to.throw(KlingRelayConfigError, /options\.pricing at \/0\/currency/);
    expect(() => loadPricingRules([{ type: 'tts', price: 1, cost: 2 }])).to.throw(KlingRelayConfigError, /unknown field 'cost'/);
    expect(() => loadPricingRules(join(dir, 'missing.json'))).to.throw(KlingRelayConfigError).with.property('code', 'ERR_KLING_RELAY_PRICING_FILE');
  });

  it("parses Kling's duration strings at the precision Kling reports", () => {
    expect(parseDuration('5.0')).to.equal(5);
    expect(parseDuration('5.1s')).to.equal(5.1);
    expect(parseDuration('9.96')).to.equal(9.96);
    expect(parseDuration('10')).to.equal(10);
    expect(parseDuration(7.9)).to.equal(7.9);
    expect(parseDuration('abc')).to.equal(undefined);
    expect(parseDuration('-1')).to.equal(undefined);
    expect(parseDuration(undefined)).to.equal(undefined);
  });

  it('recomputes the charge from the result, capped at the hold', () => {
    // motion-control held for 30 s at 0.001 USD/s = 15000; Kling delivered 12.4 s.
    expect(actualCharge(15_000, { type: 'per_second', unit: 0.001 }, { videos: [{ duration: '12.4' }] }, QPU)).to.deep.equal({ charge: 6_200, units: 12.4 });
    // A result longer than the estimate is never charged above the hold.
    expect(actualCharge(2_500, { type: 'per_second', unit: 0.001 }, { videos: [{ duration: '5.1s' }] }, QPU).charge).to.equal(2_500);
    expect(actualCharge(30_000, { type: 'per_image', unit: 0.01 }, { images: [{}, {}] }, QPU)).to.deep.equal({ charge: 10_000, units: 2 });
    expect(actualCharge(30_000, { type: 'per_image', unit: 0.01 }, { series_images: [{}, {}, {}, {}] }, QPU).charge).to.equal(20_000);
    expect(actualCharge(10_000, { type: 'fixed', unit: 0.02 }, { images: [] }, QPU).charge).to.equal(10_000);
    expect(actualCharge(10_000, { type: 'per_second', unit: 0.001 }, { weird: true }, QPU)).to.deep.equal({ charge: 10_000, units: undefined });
  });

  it('charges every delivered second, fractions included, never above the hold', () => {
    // A 3.9 s text-to-audio held for 5 s at 0.0008 USD/s: 3.9 x 400 = 1560, not 3 x 400.
    expect(actualCharge(2_000, { type: 'per_second', unit: 0.0008 }, { audios: [{ duration: '3.9' }] }, QPU)).to.deep.equal({ charge: 1_560, units: 3.9 });
    // A 9.96 s video held for 10 s at 0.028 USD/s: 9.96 x 14000 = 139440, not 9 x 14000.
    expect(actualCharge(140_000, { type: 'per_second', unit: 0.028 }, { videos: [{ duration: '9.96' }] }, QPU)).to.deep.equal({ charge: 139_440, units: 9.96 });
    // Exactly the requested seconds is exactly the hold, whatever floating point makes of 0.028 x 5.
    const hold = priced('/v1/videos/text2video', { model_name: 'kling-v1', prompt: 'x', duration: '5' }, [{ model: '*', type: 'text2video', mode: '*', duration: '*', pricing_type: 'per_second', price: 0.028, currency: 'USD' }]).quota;
    expect(hold).to.equal(70_000);
    expect(actualCharge(hold, { type: 'per_second', unit: 0.028 }, { videos: [{ duration: '5.0' }] }, QPU).charge).to.equal(70_000);
    expect(actualCharge(hold, { type: 'per_second', unit: 0.028 }, { videos: [{ duration: '5.1' }] }, QPU).charge).to.equal(70_000);
  });

  it('rounds fractional quota to the nearest unit at hold and at settle, the same way both times', () => {
    // 0.0000013 USD/s x 500000 = 0.65 quota a second.
    const rules: PricingRule[] = [{ model: '*', type: 'text2video', mode: '*', duration: '*', pricing_type: 'per_second', price: 0.0000013, currency: 'USD' }];
    const hold = (duration: string) => priced('/v1/videos/text2video', { model_name: 'kling-v1', prompt: 'x', duration }, rules).quota;
    expect(hold('5')).to.equal(3); // 3.25
    expect(hold('10')).to.equal(7); // 6.5, half up
    expect(actualCharge(hold('10'), { type: 'per_second', unit: 0.0000013 }, { videos: [{ duration: '10.0' }] }, QPU).charge).to.equal(7);
    expect(actualCharge(hold('10'), { type: 'per_second', unit: 0.0000013 }, { videos: [{ duration: '9.2' }] }, QPU).charge).to.equal(6); // 5.98
    expect(actualCharge(hold('10'), { type: 'per_second', unit: 0.0000013 }, { videos: [{ duration: '7.6' }] }, QPU).charge).to.equal(5); // 4.94
    // Half a unit rounds up, as decimal arithmetic says, not as floating point's 500.49999999999994 or 7.499999999999999.
    const fixed = priced('/v1/images/generations', { model_name: 'kling-v1', prompt: 'x' }, [{ model: '*', type: '*', mode: '*', duration: '*', pricing_type: 'fixed', price: 0.001001, currency: 'USD' }]);
    expect(fixed.quota).to.equal(501);
    expect(actualCharge(10, { type: 'per_second', unit: 0.000001 }, { videos: [{ duration: '15' }] }, QPU).charge).to.equal(8);
  });
});
