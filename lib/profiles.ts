import type { Knex } from 'knex';
import type { KnexQuotaStoreOptions } from '../adapters/quota-store.js';
import type { Billing, HostTableOptions, TaskTransition, TransitionHook } from '../adapters/types.js';

/** Host applications whose own tables the relay can write as the applications themselves do. */
export const PROFILES = ['one-api', 'new-api'] as const;
export type ProfileName = (typeof PROFILES)[number];

/** What a profile sets when the host's options leave it out. */
export interface Profile {
  tables: { video: HostTableOptions; image: HostTableOptions };
  quota: KnexQuotaStoreOptions;
  billing: Billing;
  /** The application's own writes at settle, run before the host's `onTransition`. */
  onTransition?: TransitionHook;
}

/** one-api's type of a consume row in `logs`. */
const ONE_API_CONSUME_LOG = 2;

/**
 * What one-api records when a Kling task succeeds and is charged: a consume row in `logs`, one more
 * request in `users.request_count` (the relay's quota store already raised `used_quota`), and the
 * charge in the channel's `used_quota`. A failure charges nothing, so it records nothing.
 */
async function oneApiSettle(trx: Knex.Transaction, change: TaskTransition): Promise<void> {
  if (change.to !== 'succeed' || change.charge <= 0) return;
  const userId = Number(change.userId);
  const channelId = typeof change.channelId === 'number' ? change.channelId : 0;
  await trx('users').where('id', userId).increment('request_count', 1);
  if (channelId > 0) await trx('channels').where('id', channelId).increment('used_quota', change.charge);
  const user = (await trx('users').where('id', userId).first('username')) as { username: string | null } | undefined;
  await trx('logs').insert({
    user_id: userId,
    username: user?.username ?? '',
    created_at: Math.floor(Date.now() / 1000),
    type: ONE_API_CONSUME_LOG,
    content: `Kling task succeeded, charged quota=${change.charge}, task_id=${change.klingTaskId ?? ''}, type=${change.type}`,
    model_name: change.model,
    token_name: '',
    quota: change.charge,
    channel_id: channelId,
    duration: Math.max(0, Math.round((Date.now() - change.createdAt) / 1000)),
  });
}

/** one-api's status words are Kling's, with `pending` before Kling answered. */
const ONE_API_STATUSES = { pending: 'pending' };

const ONE_API: Profile = {
  tables: {
    video: {
      name: 'videos',
      statuses: ONE_API_STATUSES,
      result: 'task',
      duration: 'text',
      failedQuota: 'estimate',
      extraColumns: { store_url: { from: 'url', on: ['succeed'] }, video_id: { from: 'resourceId', on: ['succeed'] } },
    },
    image: {
      name: 'images',
      columns: { type: false },
      statuses: ONE_API_STATUSES,
      result: 'task',
      failedQuota: 'estimate',
      extraColumns: { store_url: { from: 'url', on: ['succeed'] }, n: { from: 'requestedCount' } },
    },
  },
  quota: { table: 'users', idColumn: 'id', quotaColumn: 'quota', usedColumn: 'used_quota' },
  billing: 'charge-on-success',
  onTransition: oneApiSettle,
};

/**
 * new-api keeps every asynchronous task in `tasks`. `platform` is `kling-relay`, not new-api's own
 * `kling`: new-api's poller polls and refunds the unfinished rows of the platforms it has an adaptor
 * for, and the relay settles its tasks itself (docs/guide.md, "new-api").
 */
const NEW_API_TASKS: HostTableOptions = {
  name: 'tasks',
  columns: { type: 'action', result: 'data', username: false, model: false, provider: false, mode: false, duration: false },
  statuses: { pending: 'NOT_START', submitted: 'SUBMITTED', processing: 'IN_PROGRESS', succeed: 'SUCCESS', failed: 'FAILURE' },
  result: 'envelope',
  resultColumn: 'json',
  // new-api refunds a failed task's quota to the user and leaves the row's quota as it was.
  failedQuota: 'estimate',
  extraColumns: {
    platform: { value: 'kling-relay' },
    submit_time: { from: 'now' },
    start_time: { from: 'now', on: ['processing'] },
    finish_time: { from: 'now', on: ['succeed', 'failed'] },
    progress: { values: { insert: '0%', submitted: '10%', processing: '30%', succeed: '100%', failed: '100%' } },
  },
};

const NEW_API: Profile = {
  tables: { video: NEW_API_TASKS, image: NEW_API_TASKS },
  quota: { table: 'users', idColumn: 'id', quotaColumn: 'quota', usedColumn: 'used_quota' },
  billing: 'hold',
};

/** Freezes an object and every object in it: the profiles are shared by every relay of the process. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

/** Each profile's table options, users balance, billing and settle writes; exported as `hostProfiles`, to build on. */
export const PROFILE_DEFAULTS: Readonly<Record<ProfileName, Profile>> = deepFreeze({ 'one-api': ONE_API, 'new-api': NEW_API });

/** The profile's hook, then the host's: both in the transition's transaction. */
export function composeHooks(first: TransitionHook | undefined, second: TransitionHook | undefined): TransitionHook | undefined {
  if (!first || !second) return first ?? second;
  return async (trx, change) => {
    await first(trx, change);
    await second(trx, change);
  };
}
