import type { CallbackReport } from '../callbacks/delivery.js';

/** What one reconciler pass did, counted per outcome. */
export interface ReconcileReport {
  /** Tasks this pass leased and looked at. */
  claimed: number;
  /** Tasks that reached a final state (settled or refunded) in this pass. */
  finished: number;
  /** Tasks whose status moved forward without finishing. */
  progressed: number;
  /** Tasks Kling had although the create's answer was lost, now known by their Kling id. */
  adopted: number;
  /**
   * Tasks failed and refunded because Kling never got them, or they outlived taskTimeoutMs (also when
   * their last check failed: the account gone, Kling not knowing the task, an answer the relay cannot read).
   */
  expired: number;
  /** Kling could not be asked; tried again later. */
  errors: number;
  /** The delivery pass over callers' callback notices that follows the tasks (absent if it could not run). */
  callbacks?: CallbackReport;
}

export function emptyReport(): ReconcileReport {
  return { claimed: 0, finished: 0, progressed: 0, adopted: 0, expired: 0, errors: 0 };
}
