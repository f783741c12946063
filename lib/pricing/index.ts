export { PriceBook, loadPricingRules, type PricingRule, type PriceKey } from './rules.js';
export { quote, actualCharge, parseDuration, deliveredUnits, fieldValue, usdToQuota, type PriceQuote, type QuoteResult } from './estimate.js';
