import { describe, expect, it } from 'vitest';
import {
  ApiClient,
  ApiError,
  buildUrl,
  etagVersion,
  mergePositions,
  minPositionHeader,
  parsePosition,
  parseProblem,
  parseRetryAfter,
  parseTokenResponse,
  PositionStore,
} from './api';

describe('parseProblem', () => {
  it('reads a full problem+json body', () => {
    const body = JSON.stringify({
      type: 'https://example.com/problems/validation_failed',
      title: 'Validation failed',
      status: 422,
      detail: 'Some fields are invalid',
      code: 'validation_failed',
      errors: [{ field: 'amount', code: 'out_of_range', message: 'must be 1 … 10^15' }],
    });
    const p = parseProblem(422, 'application/problem+json', body);
    expect(p.code).toBe('validation_failed');
    expect(p.status).toBe(422);
    expect(p.errors).toEqual([{ field: 'amount', code: 'out_of_range', message: 'must be 1 … 10^15' }]);
  });

  it('fills in what a sparse body leaves out', () => {
    const p = parseProblem(409, 'application/problem+json', '{"code":"insufficient_funds"}');
    expect(p).toMatchObject({ code: 'insufficient_funds', status: 409, title: 'HTTP 409', detail: '', errors: [] });
  });

  it('derives a code from the status for non-JSON bodies (a proxy error page)', () => {
    const p = parseProblem(502, 'text/html', '<html><body>Bad gateway</body></html>');
    expect(p.code).toBe('unavailable');
    expect(p.status).toBe(502);
    expect(parseProblem(403, null, '').code).toBe('forbidden');
    expect(parseProblem(418, null, '').code).toBe('http_418');
  });

  it('survives malformed JSON and malformed errors entries', () => {
    expect(parseProblem(400, 'application/problem+json', '{not json').code).toBe('malformed_body');
    const p = parseProblem(422, 'application/json', '{"code":"validation_failed","errors":[null,{"field":"email"}]}');
    expect(p.errors).toEqual([{ field: 'email', code: 'invalid', message: '' }]);
  });

  it('keeps Retry-After', () => {
    expect(parseProblem(503, 'application/problem+json', '{"code":"projection_lagging"}', '2').retryAfter).toBe(2);
  });
});

describe('parseRetryAfter', () => {
  it('accepts seconds and HTTP dates', () => {
    expect(parseRetryAfter('5')).toBe(5);
    const now = Date.parse('2024-01-01T00:00:00Z');
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:10 GMT', now)).toBe(10);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});

describe('positions', () => {
  it('parses header values and ETags', () => {
    expect(parsePosition('42')).toBe(42);
    expect(parsePosition(' 7 ')).toBe(7);
    expect(parsePosition('-1')).toBeUndefined();
    expect(parsePosition('abc')).toBeUndefined();
    expect(etagVersion('"3"')).toBe(3);
    expect(etagVersion('W/"4"')).toBe(4);
  });

  it('sends X-Min-Position only while the projection has not been seen at the position', () => {
    expect(minPositionHeader(undefined, 10)).toBeUndefined();
    expect(minPositionHeader(0, undefined)).toBeUndefined();
    expect(minPositionHeader(12, undefined)).toBe(12);
    expect(minPositionHeader(12, 11)).toBe(12);
    expect(minPositionHeader(12, 12)).toBeUndefined();
    expect(minPositionHeader(12, 30)).toBeUndefined();
  });

  it('only moves positions forward', () => {
    let s = mergePositions({}, { projection: 10 }, 1);
    s = mergePositions(s, { projection: 8 }, 2);
    expect(s.projection).toBe(10);
    expect(s.projectionSeenAt).toBe(2);
    s = mergePositions(s, { lastWrite: 15 });
    s = mergePositions(s, { lastWrite: 14 });
    expect(s.lastWrite).toBe(15);
    s = mergePositions(s, { logHead: 20, logHeadIsLowerBound: true });
    s = mergePositions(s, { logHead: 20, logHeadIsLowerBound: false });
    expect(s).toMatchObject({ logHead: 20, logHeadIsLowerBound: false });
    s = mergePositions(s, { logHead: 19, logHeadIsLowerBound: true });
    expect(s).toMatchObject({ logHead: 20, logHeadIsLowerBound: false });
  });

  it('notifies subscribers on change only', () => {
    const store = new PositionStore();
    let calls = 0;
    store.subscribe(() => calls++);
    store.report({ lastWrite: 3 });
    store.report({ lastWrite: 2 });
    expect(calls).toBe(1);
    expect(store.get().lastWrite).toBe(3);
  });
});

describe('parseTokenResponse', () => {
  const jwt = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln';
  it('accepts {token}, {access_token}, a JSON string and plain text', () => {
    expect(parseTokenResponse('application/json', JSON.stringify({ token: jwt }))).toBe(jwt);
    expect(parseTokenResponse('application/json', JSON.stringify({ access_token: jwt, token_type: 'Bearer' }))).toBe(jwt);
    expect(parseTokenResponse('application/json', JSON.stringify(jwt))).toBe(jwt);
    expect(parseTokenResponse('text/plain', `${jwt}\n`)).toBe(jwt);
  });
  it('rejects anything else', () => {
    expect(() => parseTokenResponse('application/json', '{"nope":1}')).toThrow();
    expect(() => parseTokenResponse('text/html', '<html>')).toThrow();
  });
});

describe('buildUrl', () => {
  it('drops empty query values', () => {
    expect(buildUrl('', '/api/v1/users', { limit: 20, cursor: null, x: '' })).toBe('/api/v1/users?limit=20');
    expect(buildUrl('http://h', '/p', { a: 'b c' })).toBe('http://h/p?a=b+c');
  });
});

interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
}

function fakeFetch(answers: ((c: Call) => Response)[]) {
  const calls: Call[] = [];
  const f = async (input: RequestInfo | URL, init?: RequestInit) => {
    const call: Call = {
      url: String(input),
      method: init?.method ?? 'GET',
      headers: { ...(init?.headers as Record<string, string>) },
      body: init?.body as string | undefined,
    };
    calls.push(call);
    const next = answers.shift();
    if (!next) throw new Error('unexpected request');
    return next(call);
  };
  return { calls, fetch: f as typeof fetch };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });

describe('ApiClient', () => {
  let n = 0;
  const newId = () => `id-${++n}`;

  it('sends token, correlation id and idempotency key on commands, and remembers the position', async () => {
    const { calls, fetch } = fakeFetch([
      () => json(201, { transaction_id: 't1', status: 'completed', position: 41 }, { 'X-Position': '41' }),
      () => json(200, { user_id: 'u1', balances: [] }, { 'X-Projection-Position': '40' }),
      () => json(200, { user_id: 'u1', balances: [{ currency: 'EUR', amount: 5 }] }, { 'X-Projection-Position': '41' }),
      () => json(200, { user_id: 'u1', balances: [] }, { 'X-Projection-Position': '41' }),
    ]);
    const client = new ApiClient({ getToken: () => 'tok', fetch, newId });
    const answer = await client.recordTransaction({ type: 'deposit', user_id: 'u1', amount: 5, currency: 'EUR' }, { idempotencyKey: 'k-1' });
    expect(answer.position).toBe(41);
    expect(calls[0].method).toBe('POST');
    expect(calls[0].headers.Authorization).toBe('Bearer tok');
    expect(calls[0].headers['Idempotency-Key']).toBe('k-1');
    expect(calls[0].headers['X-Correlation-Id']).toMatch(/^id-/);
    expect(calls[0].headers['Content-Type']).toBe('application/json');
    expect(JSON.parse(calls[0].body!)).toEqual({ type: 'deposit', user_id: 'u1', amount: 5, currency: 'EUR' });
    expect(client.positions.get().lastWrite).toBe(41);

    // Read-your-writes: the next reads wait for 41 until an answer shows the projection there.
    await client.getBalances('u1');
    expect(calls[1].headers['X-Min-Position']).toBe('41');
    expect(calls[1].headers['Idempotency-Key']).toBeUndefined();
    await client.getBalances('u1');
    expect(calls[2].headers['X-Min-Position']).toBe('41');
    await client.getBalances('u1');
    expect(calls[3].headers['X-Min-Position']).toBeUndefined();
    expect(client.positions.get().projection).toBe(41);
  });

  it('an explicit minPosition wins, and 0 sends none', async () => {
    const { calls, fetch } = fakeFetch([() => json(200, { items: [], next_cursor: null }), () => json(200, { items: [], next_cursor: null })]);
    const client = new ApiClient({ getToken: () => null, fetch, newId });
    await client.listUsers({ limit: 5 }, { minPosition: 9 });
    await client.listUsers({}, { minPosition: 0 });
    expect(calls[0].url).toBe('/api/v1/users?limit=5');
    expect(calls[0].headers['X-Min-Position']).toBe('9');
    expect(calls[0].headers.Authorization).toBeUndefined();
    expect(calls[1].headers['X-Min-Position']).toBeUndefined();
  });

  it('sends If-Match for profile updates and takes the version from the answer or ETag', async () => {
    const { calls, fetch } = fakeFetch([() => json(200, { user_id: 'u1', position: 50 }, { ETag: '"4"' })]);
    const client = new ApiClient({ getToken: () => 't', fetch, newId });
    const a = await client.updateProfile('u1', 3, { display_name: 'Ann' });
    expect(calls[0].method).toBe('PATCH');
    expect(calls[0].headers['If-Match']).toBe('"3"');
    expect(calls[0].headers['Idempotency-Key']).toBeTruthy();
    expect(a.version).toBe(4);
  });

  it('throws ApiError with the parsed problem and the correlation id', async () => {
    const { fetch } = fakeFetch([
      () =>
        new Response(JSON.stringify({ type: 'x', title: 'Forbidden', status: 403, detail: 'not yours', code: 'forbidden' }), {
          status: 403,
          headers: { 'Content-Type': 'application/problem+json' },
        }),
    ]);
    const client = new ApiClient({ getToken: () => 't', fetch, newId });
    const err = await client.getUser('other').catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.problem.code).toBe('forbidden');
    expect(err.problem.status).toBe(403);
    expect(err.problem.correlationId).toMatch(/^id-/);
  });

  it('reports 401 to the app and turns network failures into a problem', async () => {
    let unauth = 0;
    const { fetch } = fakeFetch([
      () => new Response('{"code":"unauthenticated","status":401}', { status: 401, headers: { 'Content-Type': 'application/problem+json' } }),
      () => {
        throw new TypeError('Failed to fetch');
      },
    ]);
    const client = new ApiClient({ getToken: () => 't', fetch, newId, onUnauthenticated: () => unauth++ });
    await expect(client.getUser('x')).rejects.toBeInstanceOf(ApiError);
    expect(unauth).toBe(1);
    const e = await client.getUser('x').catch((x) => x);
    expect(e.problem).toMatchObject({ status: 0, code: 'network_error' });
  });

  it('learns the log head from the audit log without waiting on the projection', async () => {
    const ev = (position: number) => ({ position });
    const { calls, fetch } = fakeFetch([() => json(200, { items: [ev(5), ev(6)], next_after: 6 }, { 'X-Projection-Position': '4' })]);
    const client = new ApiClient({ getToken: () => 't', fetch, newId });
    client.positions.report({ lastWrite: 6 });
    await client.auditEvents({ after: 4, limit: 2 });
    expect(calls[0].headers['X-Min-Position']).toBeUndefined();
    expect(calls[0].url).toBe('/api/v1/audit/events?after=4&limit=2');
    expect(client.positions.get()).toMatchObject({ projection: 4, logHead: 6, logHeadIsLowerBound: true });
  });

  it('asks /dev/token for a role and subject', async () => {
    const { calls, fetch } = fakeFetch([() => json(200, { token: 'a.b.c' })]);
    const client = new ApiClient({ getToken: () => null, fetch, newId });
    expect(await client.devToken('user', 'u-1')).toBe('a.b.c');
    expect(calls[0].url).toBe('/dev/token?role=user&sub=u-1');
  });
});
