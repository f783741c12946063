import { KlingError } from './codes.js';
import type { KlingFault, QueryFault } from './types.js';

/** How the next successful create is answered, when not normally. */
export type CreateDelivery = { kind: 'hang'; ms: number | undefined } | { kind: 'reset' } | { kind: 'error'; error: KlingError };

/**
 * Fault switches. Most are one-shot: used by the next request they apply to, then forgotten. Lost
 * tasks stay lost until reset().
 */
export class FaultSwitches {
  private createError: KlingError | undefined;
  private createDelivery: CreateDelivery | undefined;
  private query: QueryFault | undefined;
  private queryHangs = 0;
  private lost: Set<string> | 'all' = new Set();

  failNextCreate(fault: KlingFault): void {
    this.createError = KlingError.from(fault);
  }

  hangNextCreate(ms?: number): void {
    this.createDelivery = { kind: 'hang', ms };
  }

  /** The next successful create makes its task, then answers this Kling error instead of it. */
  failNextCreateAfterCreating(fault: KlingFault): void {
    this.createDelivery = { kind: 'error', error: KlingError.from(fault) };
  }

  resetNextCreate(): void {
    this.createDelivery = { kind: 'reset' };
  }

  failNextQuery(kind: QueryFault): void {
    this.query = kind;
  }

  /** The next `count` single-task GETs (or standard-family `GET /tasks`) are read and never answered. */
  hangNextQueries(count: number): void {
    this.queryHangs = count;
  }

  /** Single-task GETs of this task (by Kling's id or its external_task_id; every task if none) answer 404/1203. */
  loseTask(id?: string): void {
    if (id === undefined) this.lost = 'all';
    else if (this.lost !== 'all') this.lost.add(id);
  }

  /** Whether a GET of a task, named by any of these ids, answers not found. */
  isLost(...ids: (string | undefined)[]): boolean {
    const lost = this.lost;
    return lost === 'all' || ids.some((id) => id !== undefined && lost.has(id));
  }

  takeQueryHang(): boolean {
    if (this.queryHangs <= 0) return false;
    this.queryHangs--;
    return true;
  }

  takeCreateError(): KlingError | undefined {
    const error = this.createError;
    this.createError = undefined;
    return error;
  }

  takeCreateDelivery(): CreateDelivery | undefined {
    const delivery = this.createDelivery;
    this.createDelivery = undefined;
    return delivery;
  }

  takeQueryFault(): QueryFault | undefined {
    const fault = this.query;
    this.query = undefined;
    return fault;
  }

  reset(): void {
    this.createError = undefined;
    this.createDelivery = undefined;
    this.query = undefined;
    this.queryHangs = 0;
    this.lost = new Set();
  }
}
