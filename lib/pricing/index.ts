export { PriceBook, loadPricingRules, type PricingRule, type PriceKey, type PriceList, type Rounding, type Switch } from './rules.js';
export { quote, actualCharge, parseDuration, deliveredUnits, reportedUnits, fieldValue, switchValue, usdToQuota, type PriceQuote, type QuoteResult, type SettleTerms, type CountBasis } from './estimate.js';
