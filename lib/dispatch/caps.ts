/**
 * An account's concurrency cap as configured (`accounts[].concurrency`): one number for every model
 * version, or a map of model version to cap with an optional `default` for the versions it does not
 * name. A model version with no cap is not limited by the relay (Kling's 1303 answers still are).
 */
export type ConcurrencyInit = number | Readonly<Record<string, number>>;

const isCap = (value: unknown): boolean => Number.isSafeInteger(value) && (value as number) >= 1;

/** What is wrong with a configured cap, in words for an error message; undefined when it is sound. */
export function concurrencyProblem(value: unknown): string | undefined {
  if (value === undefined || isCap(value)) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `must be an integer >= 1 (slots per model version) or an object of model version to one, e.g. { "kling-v3": 3, "default": 5 }; got ${JSON.stringify(value)}`;
  }
  for (const [model, cap] of Object.entries(value)) {
    if (model.trim() === '') return 'names an empty model version; use the model_name Kling knows, or "default"';
    if (!isCap(cap)) return `["${model}"] must be an integer >= 1, got ${JSON.stringify(cap)}`;
  }
  return undefined;
}

/** The configured cap of one model version; undefined: not limited. */
export function configuredCap(concurrency: ConcurrencyInit | undefined, model: string): number | undefined {
  if (concurrency === undefined || typeof concurrency === 'number') return concurrency;
  return concurrency[model] ?? concurrency.default;
}
