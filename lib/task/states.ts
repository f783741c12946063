/**
 * The relay's states of a task, in the order a task moves through them. `pending`: held and recorded,
 * Kling has not answered the create yet; `submitted` and `processing` are Kling's; `succeed` and
 * `failed` are final and never left.
 */
export const TASK_STATES = ['pending', 'submitted', 'processing', 'succeed', 'failed'] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** The statuses Kling itself reports (a caller sees `pending` as `submitted`). */
export const KLING_STATUSES = ['submitted', 'processing', 'succeed', 'failed'] as const satisfies readonly TaskState[];

/** The states a task is still waiting in: the reconciler checks them, charge-on-success counts them in flight. */
export const ACTIVE_STATES = ['pending', 'submitted', 'processing'] as const satisfies readonly TaskState[];
export type ActiveState = (typeof ACTIVE_STATES)[number];

export const FINAL_STATES = ['succeed', 'failed'] as const satisfies readonly TaskState[];

/** How far along a state is: a status only moves to a higher rank. Both final states share the last. */
const RANK: Record<TaskState, number> = { pending: 0, submitted: 1, processing: 2, succeed: 3, failed: 3 };

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
