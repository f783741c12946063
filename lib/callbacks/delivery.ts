import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Knex } from 'knex';
import type { OutboxNotice, OutboxStore } from '../../adapters/outbox-store.js';
import { loggableError } from '../loggable-error.js';
import { loggable, type Logger } from '../upstream/client.js';
import { AddressGuard, RefusedAddressError } from './address-guard.js';
import { signatureHeaders } from './signing.js';

/** The normalised `clientCallbacks` option. */
export interface ClientCallbackConfig {
  /** `whsec_<base64>`; undefined: notices go out unsigned. */
  secret: string | undefined;
  /** Hosts (names or literal IPs, as written in the URL) exempt from the address policy. */
  allowHosts: string[];
  /** Deadline of one attempt, connection included. */
  timeoutMs: number;
  /** How long after it was written a notice is retried before it is given up. */
  retryForMs: number;
  /** How long a delivered or given-up notice is kept; null: for ever. */
  keepForMs: number | null;
}

/** What one delivery pass did (`relay.reconcile()` reports it as `callbacks`). */
export interface CallbackReport {
  /** Notices this pass leased and tried. */
  claimed: number;
  /** Notices the receiver acknowledged with a 2xx. */
  delivered: number;
  /** Failed attempts that will be tried again. */
  retrying: number;
  /** Notices given up: retryForMs ran out, or the URL points where the relay never connects. */
  gaveUp: number;
}

type AttemptResult = { ok: true; httpStatus: number } | { ok: false; error: string; httpStatus: number | null; final: boolean };

/** Notices one pass tries at most, and how many are in flight at once. */
const BATCH = 50;
const CONCURRENCY = 4;
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 60 * 60_000;
/** Ended notices are deleted at most this often per process, and at most PRUNE_BATCH at a time. */
const PRUNE_EVERY_MS = 10 * 60_000;
const PRUNE_BATCH = 1_000;

/**
 * Delivers the outbox: claims due notices with a lease (several host instances share one database),
 * POSTs each to its callback URL with the Standard Webhooks headers, and records the outcome. A 2xx is
 * delivered; anything else (a refused address, no answer within timeoutMs, a 3xx, which is never
 * followed, a 4xx or 5xx) is retried with exponential backoff until retryForMs after the notice was
 * written, with a last attempt at that deadline.
 */
export class CallbackDelivery {
  /** This process's name on leases. */
  readonly owner = `relay-${process.pid}-${randomBytes(4).toString('hex')}`;
  private readonly guard: AddressGuard;
  private readonly agents: { http: http.Agent; https: https.Agent };
  private readonly leaseMs: number;
  private active = false;
  private kicked: Promise<unknown> | undefined;
  private again = false;
  private kickBudgetMs = Number.POSITIVE_INFINITY;
  /** Whether the operator was told that notices go out unsigned: once per relay, when it first matters. */
  private warnedUnsigned = false;
  private lastPruneAt = 0;

  constructor(
    private readonly db: Knex,
    private readonly outbox: OutboxStore,
    private readonly config: ClientCallbackConfig,
    private readonly logger: Logger,
  ) {
    this.guard = new AddressGuard(config.allowHosts);
    // The guard's lookup runs when the socket connects: whatever DNS answers then is what is checked.
    this.agents = { http: new http.Agent({ lookup: this.guard.lookup, keepAlive: false }), https: new https.Agent({ lookup: this.guard.lookup, keepAlive: false }) };
    // Longer than one attempt, so that no other instance takes a notice while it is being sent.
    this.leaseMs = config.timeoutMs * 2 + 10_000;
  }

  /**
   * One pass over the due notices: CONCURRENCY workers, each claiming one notice right before it
   * sends it, so a receiver that never answers holds up one worker, not the others, and no lease is
   * taken long before its attempt. No new notice is claimed once `budgetMs` has passed (the
   * reconciler's pass waits for this one), so slow receivers cannot starve the task checks.
   */
  async deliverDue(budgetMs = Number.POSITIVE_INFINITY): Promise<CallbackReport> {
    const report: CallbackReport = { claimed: 0, delivered: 0, retrying: 0, gaveUp: 0 };
    const started = Date.now();
    let claims = 0;
    const worker = async (): Promise<void> => {
      while (claims < BATCH && Date.now() - started < budgetMs) {
        claims++;
        const [notice] = await this.outbox.claimDue(this.db, this.owner, Date.now(), this.leaseMs, 1);
        // Nothing this worker may take now (the rest may wait behind notices in flight): the workers
        // still sending claim again when they are done.
        if (!notice) return;
        report.claimed++;
        await this.deliver(notice, report);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    // After the deliveries, so that it never takes their budget.
    await this.pruneIfDue(Date.now());
    return report;
  }

  /**
   * Deletes notices that ended (delivered or given up) more than keepForMs ago, at most once per
   * PRUNE_EVERY_MS (or per keepForMs, when shorter) in this process. A failure is logged and left for
   * a later pass: the outbox's notices matter more than its size.
   */
  private async pruneIfDue(now: number): Promise<void> {
    const keep = this.config.keepForMs;
    if (keep === null || now - this.lastPruneAt < Math.min(PRUNE_EVERY_MS, keep)) return;
    this.lastPruneAt = now;
    const endedBefore = now - keep;
    try {
      const count = await this.outbox.prune(this.db, endedBefore, PRUNE_BATCH);
      if (count > 0) this.logger.info('client callback notices deleted', { count, endedBefore });
    } catch (error) {
      this.logger.warn('could not delete ended client callback notices', { error: loggableError(error) });
    }
  }

  /**
   * Delivers soon after a notice is committed instead of at the next reconcile pass: while started,
   * each kick runs a pass (one at a time; a kick during a pass runs one more after it). Safe beside the
   * reconciler's own pass and other instances: every notice is claimed with a lease.
   */
  kick(): void {
    if (!this.active) return;
    if (this.kicked) {
      this.again = true;
      return;
    }
    this.kicked = this.deliverDue(this.kickBudgetMs)
      .catch((error: unknown) => this.logger.error('client callback delivery pass failed', { error: loggableError(error) }))
      .finally(() => {
        this.kicked = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Starts prompt delivery on kicks (relay.start()); `budgetMs` bounds how long one kicked pass claims. */
  start(budgetMs: number): void {
    this.active = true;
    this.kickBudgetMs = budgetMs;
  }

  /** Stops prompt delivery and waits for a kicked pass in flight. */
  async stop(): Promise<void> {
    this.active = false;
    this.again = false;
    await this.kicked;
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private async deliver(notice: OutboxNotice, report: CallbackReport): Promise<void> {
    const attempt = notice.attempts + 1;
    const result = await this.attempt(notice);
    const now = Date.now();
    let host = '';
    try {
      host = new URL(notice.url).host;
    } catch {
      // an unreadable URL is logged without a host
    }
    // The URL's path and query may carry the caller's own token: logs name the host only.
    const meta = { taskId: notice.task_id, noticeId: notice.notice_id, status: notice.status, attempt, host };
    if (result.ok) {
      if (await this.outbox.markDelivered(this.db, notice.id, this.owner, attempt, result.httpStatus, now)) report.delivered++;
      this.logger.info('client callback delivered', { ...meta, outcome: 'delivered', httpStatus: result.httpStatus });
      return;
    }
    const deadline = notice.created_at + this.config.retryForMs;
    const retryAt = result.final || now >= deadline ? null : Math.min(now + Math.min(FIRST_RETRY_MS * 2 ** (attempt - 1), MAX_RETRY_MS), deadline);
    await this.outbox.markFailed(this.db, notice.id, this.owner, { attempts: attempt, error: result.error, httpStatus: result.httpStatus, retryAt }, now);
    const failure = { ...meta, httpStatus: result.httpStatus ?? undefined, error: result.error };
    if (retryAt === null) {
      report.gaveUp++;
      this.logger.warn('client callback given up', { ...failure, outcome: 'gave_up' });
    } else {
      report.retrying++;
      this.logger.info('client callback attempt failed', { ...failure, outcome: 'retrying', retryInMs: retryAt - now });
    }
  }

  /** One POST of the notice. Never throws: every failure is a result. */
  private attempt(notice: OutboxNotice): Promise<AttemptResult> {
    let url: URL;
    try {
      url = new URL(notice.url);
    } catch {
      return Promise.resolve({ ok: false, error: 'the callback URL cannot be parsed', httpStatus: null, final: true });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return Promise.resolve({ ok: false, error: `unsupported scheme ${url.protocol}`, httpStatus: null, final: true });
    const literal = this.guard.check(url);
    if (literal) return Promise.resolve({ ok: false, error: `refused to connect: ${literal}`, httpStatus: null, final: true });
    if (!this.config.secret && !this.warnedUnsigned) {
      this.warnedUnsigned = true;
      this.logger.warn('client callbacks are sent unsigned: set clientCallbacks.secret or KLING_CLIENT_CALLBACK_SECRET (whsec_<base64>) so that callers can verify them');
    }
    const body = Buffer.from(notice.body);
    const timestamp = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(body.length),
      'user-agent': 'kling-relay',
      ...(this.config.secret
        ? signatureHeaders(this.config.secret, notice.notice_id, timestamp, notice.body)
        : { 'webhook-id': notice.notice_id, 'webhook-timestamp': String(timestamp) }),
    };
    const secure = url.protocol === 'https:';
    return new Promise((resolve) => {
      let settled = false;
      const done = (result: AttemptResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const request = (secure ? https : http).request(url, { method: 'POST', headers, agent: secure ? this.agents.https : this.agents.http, lookup: this.guard.lookup }, (response) => {
        const status = response.statusCode ?? 0;
        // The answer's body means nothing to the relay; dropping the socket also stops a slow or endless one.
        response.destroy();
        if (status >= 200 && status < 300) done({ ok: true, httpStatus: status });
        else if (status >= 300 && status < 400) done({ ok: false, error: `HTTP ${status}: redirects are not followed`, httpStatus: status, final: false });
        else done({ ok: false, error: `HTTP ${status}`, httpStatus: status, final: false });
      });
      const timer = setTimeout(() => request.destroy(new Error(`no answer within ${this.config.timeoutMs} ms`)), this.config.timeoutMs);
      request.on('error', (error: Error) => {
        const refused = error instanceof RefusedAddressError || (error as { code?: unknown }).code === 'ERR_KLING_RELAY_CALLBACK_ADDRESS';
        done({ ok: false, error: loggable(error.message), httpStatus: null, final: refused });
      });
      request.end(body);
    });
  }
}
