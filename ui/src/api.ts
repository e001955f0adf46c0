// The one place the UI talks HTTP. Typed functions for every command and view of API.md,
// problem+json parsing, and read-your-writes: a command's answer carries the log position
// it was committed at; later reads send it as `X-Min-Position` so query-api waits until
// its projection has caught up, and the change is visible without a manual refresh.
//
// The parsing and position bookkeeping are pure functions (tested in api.test.ts); the
// `ApiClient` class only wires them to `fetch`.
//
// The request and answer types are the services' own: generated from their OpenAPI
// documents into `api/*.gen.ts` (see "wire types" below).

import type * as Command from './api/command.gen';
import type * as Query from './api/query.gen';

export type Role = 'admin' | 'user' | 'service' | 'auditor';
export const ROLES: readonly Role[] = ['admin', 'user', 'service', 'auditor'];

// ---------------------------------------------------------------- wire types
//
// Every request and answer type below is read from the services' own OpenAPI documents:
// `api/command.gen.ts` and `api/query.gen.ts` are generated from `ui/openapi/*.json`
// (`npm run gen:api`), which are what command-api and query-api serve at `/openapi.json`.
// Nothing here restates a field; a change in a service shows up as a type error.

type CommandOp = Command.operations;
type QueryOp = Query.operations;

/** The JSON body an operation answers with `status`. */
type Answer<Op extends { responses: object }, Status extends keyof Op['responses']> =
  Op['responses'][Status] extends { content: { 'application/json': infer T } } ? T : never;

/** The JSON body an operation takes. */
type Body<Op extends { requestBody?: unknown }> =
  NonNullable<Op['requestBody']> extends { content: { 'application/json': infer T } } ? T : never;

/** An operation's query parameters; `null` or `undefined` leaves one out. */
type QueryOf<Op extends { parameters: { query?: object } }> = {
  [K in keyof NonNullable<Op['parameters']['query']>]?: NonNullable<Op['parameters']['query']>[K] | null;
};

/** The currencies command-api takes (its default `CURRENCIES`, as its document lists them). */
export type Currency = Body<CommandOp['record_transaction']>['currency'];
// Offered in this order; `satisfies` fails the type check when the document adds or drops one.
const OFFERED = { EUR: true, USD: true, GBP: true, CHF: true, JPY: true } satisfies Record<Currency, true>;
export const CURRENCIES = Object.keys(OFFERED) as readonly Currency[];

export type FieldProblem = Query.components['schemas']['FieldProblemDoc'];

/** An RFC 9457 problem, normalised: every field present even if the server left one out. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  errors: FieldProblem[];
  /** Seconds from `Retry-After`, when the answer had one. */
  retryAfter?: number;
  /** The `X-Correlation-Id` this request was sent with, to quote in a support question. */
  correlationId?: string;
}

export type UserPage = Answer<QueryOp['list_users'], 200>;
export type User = Answer<QueryOp['get_user'], 200>;
export type Balances = Answer<QueryOp['get_balances'], 200>;
export type Balance = Balances['balances'][number];
export type TransactionPage = Answer<QueryOp['list_transactions'], 200>;
export type Transaction = Answer<QueryOp['get_transaction'], 200>;
export type AuditEventsPage = Answer<QueryOp['list_audit_events'], 200>;
export type AuditEvent = AuditEventsPage['items'][number];
export type Verification = Answer<QueryOp['verify'], 200>;
export type HistoricBalances = Answer<QueryOp['historic_balances'], 200>;
type HistoricQuery = Required<NonNullable<QueryOp['historic_balances']['parameters']['query']>>;
/** The point in the past `auditBalances` replays to: a time or a log position. */
export type HistoricAt = Pick<HistoricQuery, 'as_of'> | Pick<HistoricQuery, 'at_position'>;
/** query-api's `/api/v1/operations`: the pipeline at a glance (admin). */
export type OperationsStatus = Answer<QueryOp['status'], 200>;

/** Webhook subscriptions (command-api, `/api/v1/subscriptions`). */
export type SubscriptionList = Answer<CommandOp['list_subscriptions'], 200>;
export type Subscription = Answer<CommandOp['get_subscription'], 200>;
/** The answer to making a subscription: the only time its secret is shown. */
export type CreatedSubscription = Answer<CommandOp['create_subscription'], 201>;
export type NewSubscription = Body<CommandOp['create_subscription']>;

export type RegisterUser = Body<CommandOp['register_user']>;
export type UpdateProfile = Body<CommandOp['update_profile']>;
export type TransactionCommand = Body<CommandOp['record_transaction']>;

type UserWritten = Answer<CommandOp['register_user'], 201>;
type TransactionWritten = Answer<CommandOp['record_transaction'], 201>;

/**
 * What every successful command answers, made whole: a user command's or a transaction's
 * answer, with `position` always set (from `X-Position` when the body has none) and
 * `version` from the `ETag` when the body has none.
 */
export type CommandAnswer = Partial<UserWritten & TransactionWritten> & { position: number };

// ---------------------------------------------------------------- problem parsing

const PROBLEM_TYPE_BASE = 'https://example.com/problems/';

/** A problem the client makes itself (network down, a non-JSON answer from a proxy). */
export function localProblem(status: number, code: string, title: string, detail: string): Problem {
  return { type: PROBLEM_TYPE_BASE + code, title, status, detail, code, errors: [] };
}

/** `Retry-After` as seconds; HTTP dates are turned into a delay from `now`. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value == null || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

function fallbackCode(status: number): string {
  switch (status) {
    case 400: return 'malformed_body';
    case 401: return 'unauthenticated';
    case 403: return 'forbidden';
    case 404: return 'not_found';
    case 409: return 'conflict';
    case 412: return 'version_mismatch';
    case 413: return 'body_too_large';
    case 415: return 'unsupported_media_type';
    case 422: return 'validation_failed';
    case 429: return 'rate_limited';
    case 502: case 503: case 504: return 'unavailable';
    default: return status >= 500 ? 'server_error' : `http_${status}`;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Turns any error answer into a `Problem`. A problem+json (or JSON) body is read field by
 * field and anything missing is filled in; a body that is not JSON at all (an HTML page
 * from a proxy) still yields a problem with a code derived from the status, so the UI
 * never has to show a raw page.
 */
export function parseProblem(
  status: number,
  contentType: string | null,
  bodyText: string,
  retryAfterHeader?: string | null,
): Problem {
  let body: unknown = undefined;
  const looksJson = (contentType ?? '').includes('json') || /^\s*[{[]/.test(bodyText);
  if (looksJson && bodyText.trim() !== '') {
    try {
      body = JSON.parse(bodyText);
    } catch {
      body = undefined;
    }
  }
  const code = isRecord(body) && typeof body.code === 'string' && body.code !== '' ? body.code : fallbackCode(status);
  const problem: Problem = {
    type: isRecord(body) && typeof body.type === 'string' ? body.type : PROBLEM_TYPE_BASE + code,
    title: isRecord(body) && typeof body.title === 'string' ? body.title : `HTTP ${status}`,
    status: isRecord(body) && typeof body.status === 'number' ? body.status : status,
    detail: isRecord(body) && typeof body.detail === 'string' ? body.detail : '',
    code,
    errors: [],
  };
  if (isRecord(body) && Array.isArray(body.errors)) {
    for (const e of body.errors) {
      if (!isRecord(e)) continue;
      problem.errors.push({
        field: typeof e.field === 'string' ? e.field : '',
        code: typeof e.code === 'string' ? e.code : 'invalid',
        message: typeof e.message === 'string' ? e.message : '',
      });
    }
  }
  const retryAfter = parseRetryAfter(retryAfterHeader);
  if (retryAfter !== undefined) problem.retryAfter = retryAfter;
  return problem;
}

/** Thrown by every client function for a non-2xx answer or a failed request. */
export class ApiError extends Error {
  readonly problem: Problem;
  constructor(problem: Problem) {
    super(`${problem.status} ${problem.code}: ${problem.detail || problem.title}`);
    this.name = 'ApiError';
    this.problem = problem;
  }
}

/** The problem inside any thrown value (an `ApiError`, or anything else as `client_error`). */
export function problemOf(e: unknown): Problem {
  if (e instanceof ApiError) return e.problem;
  const message = e instanceof Error ? e.message : String(e);
  return localProblem(0, 'client_error', 'Unexpected error', message);
}

// ---------------------------------------------------------------- positions

/** A non-negative integer header value, or undefined. */
export function parsePosition(value: string | null | undefined): number | undefined {
  if (value == null) return undefined;
  const v = value.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
  if (!/^\d+$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The version inside an ETag (`"3"` or `W/"3"`), for `If-Match`. */
export function etagVersion(value: string | null | undefined): number | undefined {
  return parsePosition(value);
}

/** `If-Match` value for a stream version. */
export function ifMatch(version: number): string {
  return `"${version}"`;
}

/**
 * Read-your-writes: the `X-Min-Position` to send, or undefined when none is needed.
 * `required` is what the caller must see (a command's position, or the session's latest
 * write); once a query has reported a projection position at or past it, waiting is
 * pointless and the header is left off so the read cannot be held up.
 */
export function minPositionHeader(required: number | undefined, seenProjection: number | undefined): number | undefined {
  if (required === undefined || required <= 0) return undefined;
  if (seenProjection !== undefined && seenProjection >= required) return undefined;
  return required;
}

export interface PositionSnapshot {
  /** Highest `X-Projection-Position` any answer has shown. */
  projection?: number;
  /** Highest position a command of this session was committed at. */
  lastWrite?: number;
  /** Highest log position known from the audit log (head of the event log). */
  logHead?: number;
  /** True when `logHead` is only a lower bound (the page that found it was full). */
  logHeadIsLowerBound?: boolean;
  /** When `projection` was last reported (ms since epoch). */
  projectionSeenAt?: number;
}

/** Positions only move forward: keep the larger of what we had and what we saw. */
export function mergePositions(prev: PositionSnapshot, seen: PositionSnapshot, now: number = Date.now()): PositionSnapshot {
  const max = (a?: number, b?: number) => (a === undefined ? b : b === undefined ? a : Math.max(a, b));
  const next: PositionSnapshot = { ...prev };
  if (seen.projection !== undefined) {
    next.projection = max(prev.projection, seen.projection);
    next.projectionSeenAt = now;
  }
  if (seen.lastWrite !== undefined) next.lastWrite = max(prev.lastWrite, seen.lastWrite);
  if (seen.logHead !== undefined) {
    if (prev.logHead === undefined || seen.logHead > prev.logHead) {
      next.logHead = seen.logHead;
      next.logHeadIsLowerBound = seen.logHeadIsLowerBound ?? false;
    } else if (seen.logHead === prev.logHead && seen.logHeadIsLowerBound === false) {
      next.logHeadIsLowerBound = false;
    }
  }
  return next;
}

/** A tiny observable store of positions, shared by the client and the lag indicator. */
export class PositionStore {
  private snapshot: PositionSnapshot = {};
  private listeners = new Set<() => void>();

  get = (): PositionSnapshot => this.snapshot;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  report(seen: PositionSnapshot): void {
    const prev = this.snapshot;
    const next = mergePositions(prev, seen);
    const keys = new Set([...Object.keys(prev), ...Object.keys(next)]) as Set<keyof PositionSnapshot>;
    const changed = [...keys].some((k) => next[k] !== prev[k]);
    this.snapshot = next;
    if (changed) this.listeners.forEach((l) => l());
  }
}

// ---------------------------------------------------------------- tokens

/** The token from a `/dev/token` answer: `{token}`, `{access_token}` or the bare JWT as text. */
export function parseTokenResponse(contentType: string | null, bodyText: string): string {
  const text = bodyText.trim();
  if ((contentType ?? '').includes('json') || text.startsWith('{') || text.startsWith('"')) {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error('The token endpoint answered malformed JSON.');
    }
    if (typeof body === 'string' && body !== '') return body;
    if (isRecord(body)) {
      for (const k of ['token', 'access_token', 'jwt']) {
        const v = body[k];
        if (typeof v === 'string' && v !== '') return v;
      }
    }
    throw new Error('The token endpoint answered JSON without a token.');
  }
  if (/^[\w-]+\.[\w-]+\.[\w-]*$/.test(text)) return text;
  throw new Error('The token endpoint answered something that is not a token.');
}

// ---------------------------------------------------------------- the client

export interface RequestOptions {
  query?: Record<string, string | number | undefined | null>;
  body?: unknown;
  /** Commands: the submission's key (reused when the same submission is retried). */
  idempotencyKey?: string;
  /** `If-Match` stream version. */
  ifMatch?: number;
  /** Reads: wait for at least this position (otherwise the session's last write). */
  minPosition?: number;
  signal?: AbortSignal;
}

export interface ApiResponse<T> {
  data: T;
  status: number;
  /** `X-Position` of a command, `X-Projection-Position` of a view. */
  position?: number;
  projectionPosition?: number;
  etag?: string;
  correlationId: string;
}

export interface ClientConfig {
  baseUrl?: string;
  getToken: () => string | null;
  positions?: PositionStore;
  fetch?: typeof fetch;
  newId?: () => string;
  /** Called on 401 so the app can send the user back to sign-in. */
  onUnauthenticated?: (problem: Problem) => void;
}

function newUuid(): string {
  if (typeof crypto !== 'undefined' && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // Only for non-secure contexts of very old browsers; keys need uniqueness, not secrecy.
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
    const r = (Math.random() * 16) | 0;
    return (c === 'x' ? r : (r & 0x3) | 0x8).toString(16);
  });
}

export function buildUrl(baseUrl: string, path: string, query?: RequestOptions['query']): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined || v === null || v === '') continue;
    params.set(k, String(v));
  }
  const qs = params.toString();
  return `${baseUrl}${path}${qs ? `?${qs}` : ''}`;
}

export class ApiClient {
  readonly positions: PositionStore;
  private readonly baseUrl: string;
  private readonly getToken: () => string | null;
  private readonly fetchImpl: typeof fetch;
  private readonly newId: () => string;
  private readonly onUnauthenticated?: (problem: Problem) => void;

  constructor(config: ClientConfig) {
    this.baseUrl = config.baseUrl ?? '';
    this.getToken = config.getToken;
    this.positions = config.positions ?? new PositionStore();
    this.fetchImpl = config.fetch ?? ((input, init) => fetch(input, init));
    this.newId = config.newId ?? newUuid;
    this.onUnauthenticated = config.onUnauthenticated;
  }

  /** A fresh key for a new submission. */
  newIdempotencyKey(): string {
    return this.newId();
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse<T>> {
    const correlationId = this.newId();
    const headers: Record<string, string> = {
      Accept: 'application/json, application/problem+json',
      'X-Correlation-Id': correlationId,
    };
    const token = this.getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    const isRead = method === 'GET' || method === 'HEAD';
    if (isRead) {
      const snap = this.positions.get();
      const min = minPositionHeader(opts.minPosition ?? snap.lastWrite, snap.projection);
      if (min !== undefined) headers['X-Min-Position'] = String(min);
    } else {
      headers['Idempotency-Key'] = opts.idempotencyKey ?? this.newId();
    }
    if (opts.ifMatch !== undefined) headers['If-Match'] = ifMatch(opts.ifMatch);
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }

    let res: Response;
    try {
      res = await this.fetchImpl(buildUrl(this.baseUrl, path, opts.query), {
        method,
        headers,
        body,
        signal: opts.signal,
        credentials: 'same-origin',
      });
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') throw e;
      const p = localProblem(0, 'network_error', 'Network error', 'The server could not be reached. Check the connection and retry.');
      p.correlationId = correlationId;
      throw new ApiError(p);
    }

    const projectionPosition = parsePosition(res.headers.get('X-Projection-Position'));
    if (projectionPosition !== undefined) this.positions.report({ projection: projectionPosition });

    const text = await res.text();
    if (!res.ok) {
      const problem = parseProblem(res.status, res.headers.get('Content-Type'), text, res.headers.get('Retry-After'));
      problem.correlationId = correlationId;
      if (problem.status === 401) this.onUnauthenticated?.(problem);
      throw new ApiError(problem);
    }
    let data: unknown = null;
    if (text.trim() !== '') {
      try {
        data = JSON.parse(text);
      } catch {
        const p = localProblem(res.status, 'malformed_answer', 'Unexpected answer', 'The server answered something that is not JSON.');
        p.correlationId = correlationId;
        throw new ApiError(p);
      }
    }
    const bodyPosition = isRecord(data) && typeof data.position === 'number' ? data.position : undefined;
    const position = bodyPosition ?? parsePosition(res.headers.get('X-Position'));
    if (!isRead && position !== undefined) this.positions.report({ lastWrite: position });
    return {
      data: data as T,
      status: res.status,
      position,
      projectionPosition,
      etag: res.headers.get('ETag') ?? undefined,
      correlationId,
    };
  }

  private async command(method: string, path: string, body: unknown, opts: RequestOptions): Promise<CommandAnswer> {
    const res = await this.request<Partial<CommandAnswer> | null>(method, path, { ...opts, body });
    const answer: CommandAnswer = { ...(res.data ?? {}), position: res.position ?? 0 };
    if (answer.version === undefined) {
      const v = etagVersion(res.etag);
      if (v !== undefined) answer.version = v;
    }
    return answer;
  }

  // ---- dev sign-in

  /** `GET /dev/token?role=&sub=`: a token the dev stack accepts. */
  async devToken(role: Role, sub?: string): Promise<string> {
    let res: Response;
    try {
      res = await this.fetchImpl(buildUrl(this.baseUrl, '/dev/token', { role, sub }), {
        headers: { Accept: 'application/json, text/plain' },
      });
    } catch {
      throw new ApiError(localProblem(0, 'network_error', 'Network error', 'The dev token endpoint could not be reached.'));
    }
    const text = await res.text();
    if (!res.ok) throw new ApiError(parseProblem(res.status, res.headers.get('Content-Type'), text));
    return parseTokenResponse(res.headers.get('Content-Type'), text);
  }

  // ---- commands

  registerUser(body: RegisterUser, opts: RequestOptions = {}) {
    return this.command('POST', '/api/v1/users', body, opts);
  }

  updateProfile(id: string, version: number, body: UpdateProfile, opts: RequestOptions = {}) {
    return this.command('PATCH', `/api/v1/users/${encodeURIComponent(id)}`, body, { ...opts, ifMatch: version });
  }

  deactivateUser(id: string, reason: string | undefined, opts: RequestOptions = {}) {
    const body: Body<CommandOp['deactivate_user']> = reason ? { reason } : {};
    return this.command('POST', `/api/v1/users/${encodeURIComponent(id)}/deactivate`, body, opts);
  }

  erasePersonalData(id: string, opts: RequestOptions = {}) {
    return this.command('DELETE', `/api/v1/users/${encodeURIComponent(id)}/personal-data`, undefined, opts);
  }

  recordTransaction(body: TransactionCommand, opts: RequestOptions = {}) {
    return this.command('POST', '/api/v1/transactions', body, opts);
  }

  // ---- views (each sends X-Min-Position when there is a write it has not yet seen)

  async listUsers(q: QueryOf<QueryOp['list_users']> = {}, opts: RequestOptions = {}) {
    return this.request<UserPage>('GET', '/api/v1/users', { ...opts, query: { limit: q.limit, cursor: q.cursor } });
  }

  async getUser(id: string, opts: RequestOptions = {}) {
    return this.request<User>('GET', `/api/v1/users/${encodeURIComponent(id)}`, opts);
  }

  async getBalances(id: string, opts: RequestOptions = {}) {
    return this.request<Balances>('GET', `/api/v1/users/${encodeURIComponent(id)}/balances`, opts);
  }

  async listTransactions(q: QueryOf<QueryOp['list_transactions']>, opts: RequestOptions = {}) {
    return this.request<TransactionPage>('GET', '/api/v1/transactions', {
      ...opts,
      query: { user_id: q.user_id, limit: q.limit, cursor: q.cursor },
    });
  }

  async getTransaction(id: string, opts: RequestOptions = {}) {
    return this.request<Transaction>('GET', `/api/v1/transactions/${encodeURIComponent(id)}`, opts);
  }

  // ---- audit (auditor, admin): these read the event log itself, where a committed write
  // already is, so they never wait for the projection (minPosition 0 sends no header).

  async auditEvents(q: QueryOf<QueryOp['list_audit_events']>, opts: RequestOptions = {}) {
    const res = await this.request<AuditEventsPage>('GET', '/api/v1/audit/events', {
      minPosition: 0,
      ...opts,
      query: { after: q.after ?? undefined, limit: q.limit, stream: q.stream },
    });
    const items = res.data?.items ?? [];
    if (items.length > 0 && !q.stream) {
      const full = q.limit != null && items.length >= q.limit;
      this.positions.report({ logHead: items[items.length - 1].position, logHeadIsLowerBound: full });
    }
    return res;
  }

  async auditVerify(opts: RequestOptions = {}) {
    const res = await this.request<Verification>('GET', '/api/v1/audit/verify', { minPosition: 0, ...opts });
    if (typeof res.data?.head_position === 'number') {
      this.positions.report({ logHead: res.data.head_position, logHeadIsLowerBound: false });
    }
    return res;
  }

  async auditBalances(id: string, at: HistoricAt, opts: RequestOptions = {}) {
    return this.request<HistoricBalances>('GET', `/api/v1/audit/users/${encodeURIComponent(id)}/balances`, {
      minPosition: 0,
      ...opts,
      query: 'as_of' in at ? { as_of: at.as_of } : { at_position: at.at_position },
    });
  }

  // ---- operations (admin): webhook subscriptions live in command-api (the gateway sends
  // /api/v1/subscriptions there, reads included); the pipeline's status in query-api.
  // Neither is a view of the projection, so no read waits for it (minPosition 0).

  async listSubscriptions(opts: RequestOptions = {}) {
    return this.request<SubscriptionList>('GET', '/api/v1/subscriptions', { minPosition: 0, ...opts });
  }

  async createSubscription(body: NewSubscription, opts: RequestOptions = {}) {
    return this.request<CreatedSubscription>('POST', '/api/v1/subscriptions', { ...opts, body });
  }

  async setSubscriptionPaused(name: string, paused: boolean, opts: RequestOptions = {}) {
    const verb = paused ? 'pause' : 'resume';
    return this.request<Subscription>('POST', `/api/v1/subscriptions/${encodeURIComponent(name)}/${verb}`, opts);
  }

  async deleteSubscription(name: string, opts: RequestOptions = {}) {
    return this.request<null>('DELETE', `/api/v1/subscriptions/${encodeURIComponent(name)}`, opts);
  }

  async operationsStatus(opts: RequestOptions = {}) {
    return this.request<OperationsStatus>('GET', '/api/v1/operations', { minPosition: 0, ...opts });
  }
}
