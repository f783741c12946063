export { AccountPool, DEFAULT_KLING_BASE_URL } from './accounts.js';
export type { KlingAccount, KlingAccountInit, KlingApiKeyAccount, KlingKeyPairAccount } from './accounts.js';
export {
  TokenCache,
  TOKEN_LIFETIME_SECONDS,
  TOKEN_NOT_BEFORE_SKEW_SECONDS,
  TOKEN_RENEW_BEFORE_SECONDS,
} from './jwt.js';
export type { TokenCacheOptions } from './jwt.js';
export { KlingClient, UpstreamError, DEFAULT_MAX_RESPONSE_BYTES } from './client.js';
export type {
  FetchLike,
  FetchRequestInit,
  FetchResponseLike,
  KlingClientOptions,
  KlingReply,
  KlingReplyEnvelope,
  Logger,
  UpstreamErrorInit,
  UpstreamErrorKind,
} from './client.js';
export { toRelayError, isAccountProblem, DEFAULT_RETRY_AFTER } from './errors.js';
