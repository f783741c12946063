/** Public types of the Kling sandbox. */

/** A Kling account as the sandbox knows it; the access key names the account and owns its tasks. */
export interface SandboxAccount {
  accessKey: string;
  secretKey: string;
  /**
   * API keys of this account, each accepted as `Authorization: Bearer <key>` in place of a JWT and
   * acting as this account (its tasks, its external_task_ids). Unique across accounts.
   */
  apiKeys?: string[];
  /**
   * The account's Webhook Secret (`whsec_<base64>`), as Kling's console creates one: its callbacks
   * then carry Standard Webhooks headers signed with it. None: callbacks are unsigned.
   */
  webhookSecret?: string;
  /** The secret before `webhookSecret`, during a standard rotation: callbacks carry a signature of each. */
  previousWebhookSecret?: string;
  /**
   * How many slots the account's running tasks may hold at once, per model version and pack type
   * (video or image), as Kling counts them: a create over it answers HTTP 429, code 1303. Default: no cap.
   */
  concurrency?: SandboxConcurrency;
}

/**
 * One cap for every model version, or caps per model version (`model_name`, or the create path for an
 * endpoint without one) with an optional `default` for the others; a model without a cap is not limited.
 */
export type SandboxConcurrency = number | Readonly<Record<string, number>>;

export type EndpointKind = 'task' | 'sync';

/**
 * Kling's API family. `v1`: `/v1/...` paths, JWT or API key, answers of `task_id`/`task_status`.
 * `standard`: `/<product>/<model>` paths, API keys only, answers of `id`/`status`, tasks queried
 * through `/tasks`.
 */
export type ApiFamily = 'v1' | 'standard';

export interface SandboxEndpoint {
  path: string;
  kind: EndpointKind;
  /** Default 'v1'. A standard path is always a task. */
  family?: ApiFamily;
}

export type TaskStatus = 'submitted' | 'processing' | 'succeed' | 'failed';

/**
 * How a task ends. A success may name the `duration` Kling reports for its video or audio (a string
 * like "3.2"); by default a video runs 0.1 s over the requested seconds and an audio matches them.
 */
export type TaskOutcome = ({ status: 'succeed'; duration?: string } | { status: 'failed'; message: string }) & {
  /**
   * What Kling reports it deducted for the task; null: the task object carries no deduction fields.
   * Default: a success deducts its units from a resource pack and nothing from the balance, a failure
   * deducts nothing.
   */
  deductions?: SandboxDeductions | null;
};

/** Kling's `final_unit_deduction` and `final_balance_deduction` of a final task. */
export interface SandboxDeductions {
  /** Resource-pack units, a decimal string. */
  unit: string;
  /** The balance deduction: the discounted price taken (`quota`) and the list price, decimal strings. */
  balance: BalanceDeduction;
}

export interface BalanceDeduction {
  quota: string;
  list_price: string;
  /** The currency of a standard-family task's cash entry in `billing[]`; USD when not given. */
  currency?: 'CNY' | 'USD';
}

export type Schedule = 'manual' | 'instant' | { processingAfterMs: number; finalAfterMs: number };

export interface SandboxOptions {
  /** Accounts whose JWTs and API keys are accepted. Default: one account, see `DEFAULT_SANDBOX_ACCOUNT`. */
  accounts?: SandboxAccount[];
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 0: an ephemeral port, read it from `sandbox.url`. */
  port?: number;
  /**
   * How tasks progress. 'manual': they stay `submitted` until `complete()` or `setStatus()`.
   * 'instant': final as soon as created (the create answer still says `submitted`, as Kling's does).
   * Default `{ processingAfterMs: 100, finalAfterMs: 300 }`, both counted from creation.
   */
  schedule?: Schedule;
  /** Decides how a task ends when its schedule finalises it. Default: every task succeeds. */
  outcome?: (task: SandboxTask) => TaskOutcome;
  /** Paths served in addition to the built-in `schemas/registry.json` (v1 unless they say `family: 'standard'`). */
  endpoints?: SandboxEndpoint[];
  /**
   * For long runs (the benchmark): remember at most this many recorded requests and final tasks,
   * forgetting the oldest first, and keep bodies with strings over 1 KB cut to `[N characters]`, so
   * memory stays flat however many tasks (or 10 MB images) pass. Default: everything, as tests inspect it.
   */
  history?: number;
}

/** A task as the sandbox keeps it. The object is live: it changes as the task progresses. */
export interface SandboxTask {
  taskId: string;
  /** The create path, e.g. `/v1/videos/text2video` or `/text-to-video/kling-3.0-turbo`. */
  path: string;
  /** The family of the create path: how the task is answered, queried and called back. */
  family: ApiFamily;
  accessKey: string;
  /** The create body as received. */
  body: Record<string, unknown>;
  externalTaskId: string | undefined;
  callbackUrl: string | undefined;
  status: TaskStatus;
  statusMsg: string;
  /** Unix milliseconds. */
  createdAt: number;
  updatedAt: number;
  /** Kling's `task_result`, set when the task succeeds. */
  result: Record<string, unknown> | undefined;
  finalUnitDeduction: string | undefined;
  finalBalanceDeduction: BalanceDeduction | undefined;
}

/** Kling's task object, as answered by queries and sent to callbacks. */
export interface KlingTaskObject {
  task_id: string;
  task_status: string;
  task_status_msg: string;
  task_info: { external_task_id?: string; parent_video?: { id: string; url: string; duration: string } };
  task_result?: Record<string, unknown>;
  final_unit_deduction?: string;
  final_balance_deduction?: BalanceDeduction;
  watermark_info?: { enabled: boolean };
  created_at: number;
  updated_at: number;
}

/** A standard-family status: `succeeded` where v1 says `succeed`. */
export type StandardStatus = 'submitted' | 'processing' | 'succeeded' | 'failed';

/** An output of a standard-family task; the sandbox makes videos. */
export interface StandardVideoOutput {
  type: 'video';
  id: string;
  url: string;
  watermark_url?: string;
  /** Seconds, a decimal string. */
  duration: string;
}

/** One charge of a standard-family task: resource-pack units, or money from the balance. */
export type StandardBilling =
  | { charge_type: 'unit'; amount: string; package_type: 'video' | 'image' | 'audio' }
  | { charge_type: 'cash'; cash_type: 'balance' | 'test_balance'; amount: string; currency: 'CNY' | 'USD'; list_price: string };

/** Kling's standard-family task object, as answered by `/tasks` and sent to callbacks. */
export interface StandardTaskObject {
  id: string;
  status: StandardStatus;
  /** Why the task failed; empty otherwise. */
  message: string;
  /** Unix milliseconds. */
  create_time: number;
  update_time: number;
  /** The `options.external_task_id` of the create, when one was given. */
  external_id?: string;
  outputs: StandardVideoOutput[];
  billing: StandardBilling[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON, or undefined when there was no body or it was not JSON. */
  body: unknown;
  /** The access key of the account the credential verified as (a JWT's `iss`, or an API key's account), else undefined. */
  accessKey: string | undefined;
  /** Unix milliseconds. */
  at: number;
}

export interface CallbackAttempt {
  taskId: string;
  url: string;
  /** The task object of the task's family. */
  body: KlingTaskObject | StandardTaskObject;
  /** The Standard Webhooks headers sent (`webhook-id`, `webhook-timestamp`, `webhook-signature`); empty when unsigned. */
  headers: Record<string, string>;
  /** The receiver's HTTP status, when it answered. */
  status?: number;
  /** Why the delivery failed, when it did. */
  error?: string;
  /** Unix milliseconds, when the attempt ended. */
  at: number;
}

export interface CallbackMode {
  /** Send every callback twice. */
  duplicate?: boolean;
  /** Hold a task's callbacks and send them newest first once it is final. */
  reorder?: boolean;
  /** Send no callbacks at all. */
  drop?: boolean;
  /** How callbacks of an account with a webhook secret are signed; default `valid`. */
  signature?: CallbackSignature;
}

/**
 * `valid`: signed with the account's secrets; `bad`: a signature no secret makes; `stale`: signed,
 * with a timestamp 6 minutes old; `unsigned`: no signature headers.
 */
export type CallbackSignature = 'valid' | 'bad' | 'stale' | 'unsigned';

export interface KlingFault {
  /** Default: the HTTP status Kling answers `code` with. */
  httpStatus?: number;
  code: number;
  /** Default: Kling's meaning of `code`. */
  message?: string;
}

/** `reset`: the connection is dropped without an answer, as a server closing an idle keep-alive connection. */
export type QueryFault = 'garbage' | 'no-data' | 'unknown-status' | 'http-500' | 'huge' | 'reset';
