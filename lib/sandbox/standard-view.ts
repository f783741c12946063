import type { SandboxTask, StandardBilling, StandardStatus, StandardTaskObject, StandardVideoOutput, TaskStatus } from './types.js';

/** The standard family spells success `succeeded`; the other statuses are the same words as v1's. */
const STANDARD_STATUS: Record<TaskStatus, StandardStatus> = {
  submitted: 'submitted',
  processing: 'processing',
  succeed: 'succeeded',
  failed: 'failed',
};

export function standardStatus(status: TaskStatus): StandardStatus {
  return STANDARD_STATUS[status];
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The task's videos as `outputs[]` items: the result the task store made, in this family's words. */
function outputs(task: SandboxTask): StandardVideoOutput[] {
  const videos = task.result?.videos;
  if (!Array.isArray(videos)) return [];
  return videos.map((video: Record<string, unknown>) => {
    const out: StandardVideoOutput = { type: 'video', id: text(video.id) ?? '', url: text(video.url) ?? '', duration: text(video.duration) ?? '' };
    const watermark = text(video.watermark_url);
    if (watermark !== undefined) out.watermark_url = watermark;
    return out;
  });
}

/** One `billing[]` entry per charge Kling reports: units from a video pack, and money when the balance paid. */
function billing(task: SandboxTask): StandardBilling[] {
  const charges: StandardBilling[] = [];
  if (task.finalUnitDeduction !== undefined && Number(task.finalUnitDeduction) > 0) {
    charges.push({ charge_type: 'unit', amount: task.finalUnitDeduction, package_type: 'video' });
  }
  const balance = task.finalBalanceDeduction;
  if (balance !== undefined && Number(balance.quota) > 0) {
    charges.push({ charge_type: 'cash', cash_type: 'balance', amount: balance.quota, currency: balance.currency ?? 'USD', list_price: balance.list_price });
  }
  return charges;
}

/** Kling's standard-family task object, for `/tasks` answers and callbacks. */
export function standardTaskObject(task: SandboxTask): StandardTaskObject {
  const out: StandardTaskObject = {
    id: task.taskId,
    status: standardStatus(task.status),
    message: task.statusMsg,
    create_time: task.createdAt,
    update_time: task.updatedAt,
    outputs: outputs(task),
    billing: billing(task),
  };
  if (task.externalTaskId !== undefined) out.external_id = task.externalTaskId;
  return out;
}
