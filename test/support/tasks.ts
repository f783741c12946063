import type { NewRelayTask } from '../../adapters/index.js';

let externalSeq = 0;

/** A relay task row for the storage suites: a submitted text-to-video task of user '1', fields overridable. */
export function newTask(overrides: Partial<NewRelayTask> = {}): NewRelayTask {
  externalSeq += 1;
  return {
    external_task_id: `kr-video-${externalSeq}-${Math.random().toString(36).slice(2, 10)}`,
    client_task_id: null,
    request_hash: null,
    kling_task_id: null,
    account_id: 'main',
    endpoint: '/v1/videos/text2video',
    client_endpoint: null,
    request_type: 'text2video',
    table_kind: 'video',
    host_row_id: String(externalSeq),
    user_id: '1',
    state: 'submitted',
    billing: 'hold',
    hold_quota: 100,
    charge_quota: null,
    model: 'kling-v2-1',
    slots: 1,
    pricing: '{"type":"per_second","unit":0.001}',
    status_msg: null,
    result: null,
    deductions: null,
    kling_created_at: null,
    kling_updated_at: null,
    client_callback_url: null,
    queued_body: null,
    lease_owner: null,
    lease_until: null,
    next_check_at: null,
    check_count: 0,
    checked_at: null,
    created_at: 1_700_000_000_000,
    updated_at: 1_700_000_000_000,
    ...overrides,
  };
}
