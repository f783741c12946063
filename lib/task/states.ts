/**
 * The relay's states of a task, in the order a task moves through them. `queued`: held and recorded,
 * waiting for a free Kling slot, not sent; `pending`: held and recorded, Kling has not answered the
 * create yet; `submitted` and `processing` are Kling's; `succeed` and `failed` are final and never left.
 */
export const TASK_STATES = ['queued', 'pending', 'submitted', 'processing', 'succeed', 'failed'] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** The statuses Kling itself reports (a caller sees `queued` and `pending` as `submitted`). */
export const KLING_STATUSES = ['submitted', 'processing', 'succeed', 'failed'] as const satisfies readonly TaskState[];

/** The states a task is still waiting in: charge-on-success counts them in flight. */
export const ACTIVE_STATES = ['queued', 'pending', 'submitted', 'processing'] as const satisfies readonly TaskState[];
export type ActiveState = (typeof ACTIVE_STATES)[number];

/**
 * The states of a task sent to Kling or being sent: it takes its slots there, and the reconciler
 * checks it. A `queued` task is neither: Kling has never heard of it.
 */
export const SENT_STATES = ['pending', 'submitted', 'processing'] as const satisfies readonly TaskState[];

export const FINAL_STATES = ['succeed', 'failed'] as const satisfies readonly TaskState[];

/** How far along a state is: a status only moves to a higher rank. Both final states share the last. */
const RANK: Record<TaskState, number> = { queued: 0, pending: 1, submitted: 2, processing: 3, succeed: 4, failed: 4 };

/** The states a task may move forward from to reach `state`. */
export function earlierThan(state: TaskState): TaskState[] {
  return TASK_STATES.filter((s) => RANK[s] < RANK[state]);
}

export function isFinalState(state: TaskState): boolean {
  return (FINAL_STATES as readonly TaskState[]).includes(state);
}

/** Whether a task has reached a final state. */
export function isFinal(task: { state: TaskState }): boolean {
  return isFinalState(task.state);
}
