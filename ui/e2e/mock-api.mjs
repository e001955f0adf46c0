#!/usr/bin/env node
// A stand-in for command-api and query-api, in memory, for developing the UI and for
// exercising the gateway and the e2e script without the Rust stack. It follows API.md
// closely enough to matter to the UI: roles and ownership, problem+json with `code`,
// Idempotency-Key replay, If-Match versions, positions with a projection that lags
// behind the log (so X-Min-Position really has to be sent), cursor pagination, the audit
// endpoints with a hash chain. It is NOT the contract: the real services are.
//
//   node e2e/mock-api.mjs     # command side on MOCK_COMMAND_ADDR (127.0.0.1:18081),
//                             # query side on MOCK_QUERY_ADDR (127.0.0.1:18082)
//   MOCK_PROJECTION_DELAY_MS  how long the read model trails the log (default 400)
//
// Tokens from its /dev/token are unsigned and accepted only by this mock.

import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';

const COMMAND_ADDR = process.env.MOCK_COMMAND_ADDR ?? '127.0.0.1:18081';
const QUERY_ADDR = process.env.MOCK_QUERY_ADDR ?? '127.0.0.1:18082';
const DELAY = Number(process.env.MOCK_PROJECTION_DELAY_MS ?? 400);
const CURRENCIES = new Set(['EUR', 'USD', 'GBP', 'CHF', 'JPY']);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

// ------------------------------------------------------------------ the log

const events = [];
let projection = 0;
const erasedKeys = new Set(); // user ids whose personal data is "shredded"
const idempotency = new Map(); // key -> { fingerprint, status, body, headers }

function append(streamId, eventType, data, correlationId) {
  const streamVersion = events.filter((e) => e.stream_id === streamId).length + 1;
  const prev = events.length ? events[events.length - 1].hash : '0'.repeat(64);
  const ev = {
    position: events.length + 1,
    event_id: randomUUID(),
    stream_id: streamId,
    stream_version: streamVersion,
    event_type: eventType,
    schema_version: 1,
    data,
    metadata: { correlation_id: correlationId },
    recorded_at: new Date().toISOString(),
    prev_hash: prev,
  };
  ev.hash = createHash('sha256').update(prev + JSON.stringify([ev.position, ev.stream_id, ev.event_type, ev.data])).digest('hex');
  events.push(ev);
  const pos = ev.position;
  setTimeout(() => {
    projection = Math.max(projection, pos);
  }, DELAY);
  return ev;
}

/** Fold events (up to a position) into users, balances, transactions. */
function fold(upTo = Infinity, until = Infinity) {
  const users = new Map();
  const balances = new Map();
  const txs = [];
  const add = (uid, cur, amt) => {
    const b = balances.get(uid) ?? new Map();
    b.set(cur, (b.get(cur) ?? 0) + amt);
    balances.set(uid, b);
  };
  for (const e of events) {
    if (e.position > upTo || Date.parse(e.recorded_at) > until) break;
    const d = e.data;
    switch (e.event_type) {
      case 'user.registered':
        users.set(d.user_id, { user_id: d.user_id, email: d.email, display_name: d.display_name, status: 'active', erased: false, version: e.stream_version, created_at: e.recorded_at, updated_at: e.recorded_at });
        break;
      case 'user.profile_updated': {
        const u = users.get(d.user_id);
        if (d.email !== undefined) u.email = d.email;
        if (d.display_name !== undefined) u.display_name = d.display_name;
        u.version = e.stream_version;
        u.updated_at = e.recorded_at;
        break;
      }
      case 'user.deactivated': {
        const u = users.get(d.user_id);
        u.status = 'deactivated';
        u.version = e.stream_version;
        u.updated_at = e.recorded_at;
        break;
      }
      case 'user.personal_data_erased': {
        const u = users.get(d.user_id);
        u.erased = true;
        u.version = e.stream_version;
        u.updated_at = e.recorded_at;
        break;
      }
      case 'transaction.deposited':
        add(d.user_id, d.currency, d.amount);
        txs.push({ ...d, type: 'deposit', from_user_id: null, to_user_id: null, position: e.position, recorded_at: e.recorded_at });
        break;
      case 'transaction.withdrawn':
        add(d.user_id, d.currency, -d.amount);
        txs.push({ ...d, type: 'withdrawal', from_user_id: null, to_user_id: null, position: e.position, recorded_at: e.recorded_at });
        break;
      case 'transaction.transferred':
        add(d.from_user_id, d.currency, -d.amount);
        add(d.to_user_id, d.currency, d.amount);
        txs.push({ ...d, type: 'transfer', user_id: null, position: e.position, recorded_at: e.recorded_at });
        break;
    }
  }
  for (const u of users.values()) {
    if (erasedKeys.has(u.user_id)) {
      u.email = null;
      u.display_name = null;
    }
  }
  return { users, balances, txs };
}

const balancesOf = (state, uid) => [...(state.balances.get(uid) ?? new Map())].map(([currency, amount]) => ({ currency, amount }));

// ------------------------------------------------------------------ http helpers

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(body === undefined ? '' : JSON.stringify(body));
}

class Problem extends Error {
  constructor(status, code, detail, extra = {}) {
    super(detail);
    this.status = status;
    this.code = code;
    this.extra = extra;
  }
}

function sendProblem(res, p, headers = {}) {
  const body = { type: `https://example.com/problems/${p.code}`, title: p.code.replace(/_/g, ' '), status: p.status, detail: p.message, code: p.code, ...p.extra };
  res.writeHead(p.status, { 'Content-Type': 'application/problem+json', ...(p.status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {}), ...headers });
  res.end(JSON.stringify(body));
}

const invalid = (errors) => new Problem(422, 'validation_failed', 'The request is not valid.', { errors });

function principal(req) {
  const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
  if (!m) throw new Problem(401, 'unauthenticated', 'A bearer token is required.');
  try {
    const claims = JSON.parse(Buffer.from(m[1].split('.')[1], 'base64url').toString());
    if (claims.iss !== 'mock' || typeof claims.sub !== 'string') throw new Error('foreign token');
    if (claims.exp && claims.exp < Date.now() / 1000) throw new Error('expired');
    return { sub: claims.sub, roles: claims.roles ?? [] };
  } catch {
    throw new Problem(401, 'unauthenticated', 'The token is not valid.');
  }
}

const is = (p, ...roles) => roles.some((r) => p.roles.includes(r));

async function readJson(req) {
  let size = 0;
  const chunks = [];
  for await (const c of req) {
    size += c.length;
    if (size > 64 * 1024) throw new Problem(413, 'body_too_large', 'Body over 64 KiB.');
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString();
  if (text.trim() === '') return {};
  if (!(req.headers['content-type'] ?? '').includes('json')) throw new Problem(415, 'unsupported_media_type', 'Send JSON.');
  try {
    const v = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error();
    return v;
  } catch {
    throw new Problem(400, 'malformed_body', 'The body is not a JSON object.');
  }
}

// ------------------------------------------------------------------ command side

function mayActOn(p, userId) {
  if (is(p, 'admin', 'service')) return;
  if (is(p, 'user') && p.sub === userId) return;
  throw new Problem(403, 'forbidden', 'Your role may not do this.');
}

function commandAnswer(res, status, body, version) {
  const headers = { 'X-Position': String(body.position) };
  if (version !== undefined) headers.ETag = `"${version}"`;
  return { status, body, headers };
}

function currentUser(uid) {
  return fold().users.get(uid);
}

function validateProfile(body, partial) {
  const errors = [];
  if (!partial || body.email !== undefined) {
    if (typeof body.email !== 'string' || !EMAIL_RE.test(body.email) || body.email.length > 254) errors.push({ field: 'email', code: 'invalid_email', message: 'must be a valid e-mail address of at most 254 characters' });
  }
  if (!partial || body.display_name !== undefined) {
    const n = typeof body.display_name === 'string' ? body.display_name.trim() : '';
    if (n.length < 1 || n.length > 100) errors.push({ field: 'display_name', code: 'length', message: 'must be 1–100 characters after trimming' });
  }
  if (errors.length) throw invalid(errors);
}

function emailTaken(email, exceptUser) {
  const lower = email.toLowerCase();
  for (const u of fold().users.values()) if (u.user_id !== exceptUser && u.email && u.email.toLowerCase() === lower) return true;
  return false;
}

function handleCommand(req, res, p, body, corr) {
  const url = new URL(req.url, 'http://x');
  const path = url.pathname;
  if (!is(p, 'admin', 'service', 'user')) throw new Problem(403, 'forbidden', 'Your role may not issue commands.');

  if (req.method === 'POST' && path === '/api/v1/users') {
    const userId = body.user_id ?? (is(p, 'user') ? p.sub : randomUUID());
    if (!UUID_RE.test(userId)) throw invalid([{ field: 'user_id', code: 'invalid_uuid', message: 'must be a UUID' }]);
    if (is(p, 'user') && !is(p, 'admin', 'service') && userId !== p.sub) throw new Problem(403, 'forbidden', 'A user may only register itself.');
    validateProfile(body, false);
    if (currentUser(userId)) throw new Problem(409, 'concurrency_conflict', 'That user already exists.');
    if (emailTaken(body.email)) throw new Problem(409, 'email_taken', 'That e-mail address is registered.');
    const ev = append(userId, 'user.registered', { user_id: userId, email: body.email, display_name: body.display_name.trim() }, corr);
    return commandAnswer(res, 201, { user_id: userId, version: ev.stream_version, position: ev.position }, ev.stream_version);
  }

  let m = /^\/api\/v1\/users\/([^/]+)$/.exec(path);
  if (req.method === 'PATCH' && m) {
    const id = m[1];
    mayActOn(p, id);
    const u = currentUser(id);
    if (!u) throw new Problem(404, 'not_found', 'No such user.');
    const im = /^"?(\d+)"?$/.exec(req.headers['if-match'] ?? '');
    if (!im) throw new Problem(428, 'precondition_required', 'Send If-Match with the version.');
    if (Number(im[1]) !== u.version) throw new Problem(412, 'version_mismatch', `The user is at version ${u.version}.`);
    validateProfile(body, true);
    if (body.email && emailTaken(body.email, id)) throw new Problem(409, 'email_taken', 'That e-mail address is registered.');
    const data = { user_id: id };
    if (body.email !== undefined) data.email = body.email;
    if (body.display_name !== undefined) data.display_name = body.display_name.trim();
    const ev = append(id, 'user.profile_updated', data, corr);
    return commandAnswer(res, 200, { user_id: id, version: ev.stream_version, position: ev.position }, ev.stream_version);
  }

  m = /^\/api\/v1\/users\/([^/]+)\/deactivate$/.exec(path);
  if (req.method === 'POST' && m) {
    const id = m[1];
    mayActOn(p, id);
    const u = currentUser(id);
    if (!u) throw new Problem(404, 'not_found', 'No such user.');
    if (u.status !== 'active') throw new Problem(409, 'user_inactive', 'Already deactivated.');
    const ev = append(id, 'user.deactivated', { user_id: id, reason: body.reason ?? null }, corr);
    return commandAnswer(res, 200, { user_id: id, version: ev.stream_version, position: ev.position }, ev.stream_version);
  }

  m = /^\/api\/v1\/users\/([^/]+)\/personal-data$/.exec(path);
  if (req.method === 'DELETE' && m) {
    const id = m[1];
    mayActOn(p, id);
    const u = currentUser(id);
    if (!u) throw new Problem(404, 'not_found', 'No such user.');
    erasedKeys.add(id);
    const ev = append(id, 'user.personal_data_erased', { user_id: id }, corr);
    return commandAnswer(res, 200, { user_id: id, version: ev.stream_version, position: ev.position }, ev.stream_version);
  }

  if (req.method === 'POST' && path === '/api/v1/transactions') {
    const errors = [];
    if (!['deposit', 'withdrawal', 'transfer'].includes(body.type)) errors.push({ field: 'type', code: 'invalid', message: 'must be deposit, withdrawal or transfer' });
    if (!Number.isInteger(body.amount) || body.amount < 1 || body.amount > 1e15) errors.push({ field: 'amount', code: 'out_of_range', message: 'must be an integer from 1 to 10^15 minor units' });
    if (!CURRENCIES.has(body.currency)) errors.push({ field: 'currency', code: 'unknown_currency', message: 'is not one of the configured currencies' });
    const parties = body.type === 'transfer' ? ['from_user_id', 'to_user_id'] : ['user_id'];
    for (const f of parties) if (typeof body[f] !== 'string' || !UUID_RE.test(body[f])) errors.push({ field: f, code: 'invalid_uuid', message: 'must be a user id (UUID)' });
    if (body.type === 'transfer' && body.from_user_id === body.to_user_id && !errors.length) errors.push({ field: 'to_user_id', code: 'same_user', message: 'must differ from from_user_id' });
    if (errors.length) throw invalid(errors);
    mayActOn(p, body.type === 'transfer' ? body.from_user_id : body.user_id);
    const state = fold();
    for (const f of parties) {
      const u = state.users.get(body[f]);
      if (!u) throw new Problem(404, 'not_found', `No such user: ${f}.`);
      if (u.status !== 'active') throw new Problem(409, 'user_inactive', `The user in ${f} is deactivated.`);
    }
    const payer = body.type === 'deposit' ? null : body.type === 'transfer' ? body.from_user_id : body.user_id;
    if (payer) {
      const have = state.balances.get(payer)?.get(body.currency) ?? 0;
      if (have < body.amount) throw new Problem(409, 'insufficient_funds', `Balance ${have} is below ${body.amount}.`);
    }
    const tid = randomUUID();
    const type = { deposit: 'transaction.deposited', withdrawal: 'transaction.withdrawn', transfer: 'transaction.transferred' }[body.type];
    const data = body.type === 'transfer'
      ? { transaction_id: tid, from_user_id: body.from_user_id, to_user_id: body.to_user_id, amount: body.amount, currency: body.currency }
      : { transaction_id: tid, user_id: body.user_id, amount: body.amount, currency: body.currency };
    const ev = append(`transaction-${tid}`, type, data, corr);
    return commandAnswer(res, 201, { transaction_id: tid, status: 'completed', position: ev.position });
  }

  throw new Problem(404, 'not_found', 'No such command.');
}

async function commandServer(req, res) {
  const url = new URL(req.url, 'http://x');
  try {
    if (req.method === 'GET' && url.pathname === '/dev/token') {
      const role = url.searchParams.get('role') ?? '';
      if (!['admin', 'user', 'service', 'auditor'].includes(role)) throw invalid([{ field: 'role', code: 'invalid', message: 'must be admin, user, service or auditor' }]);
      const sub = url.searchParams.get('sub') || randomUUID();
      const now = Math.floor(Date.now() / 1000);
      const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const token = `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ iss: 'mock', aud: 'example-ledger', sub, roles: [role], iat: now, exp: now + 3600 })}.mock`;
      return send(res, 200, { token, token_type: 'Bearer', expires_in: 3600 });
    }
    if (req.method === 'GET' || req.method === 'HEAD') throw new Problem(405, 'method_not_allowed', 'command-api takes no reads (gateway routing?).');
    const p = principal(req);
    const body = await readJson(req);
    const key = req.headers['idempotency-key'];
    const fp = JSON.stringify([req.method, url.pathname, body, p.sub]);
    if (key && idempotency.has(key)) {
      const rec = idempotency.get(key);
      if (rec.fingerprint !== fp) throw new Problem(409, 'idempotency_key_reused', 'This key was used for another request.');
      return send(res, rec.status, rec.body, { ...rec.headers, 'Idempotent-Replayed': 'true' });
    }
    const answer = handleCommand(req, res, p, body, req.headers['x-correlation-id'] ?? randomUUID());
    if (key) idempotency.set(key, { fingerprint: fp, ...answer });
    return send(res, answer.status, answer.body, answer.headers);
  } catch (e) {
    if (e instanceof Problem) return sendProblem(res, e);
    console.error(e);
    return sendProblem(res, new Problem(500, 'internal', 'Internal error.'));
  }
}

// ------------------------------------------------------------------ query side

function page(items, url) {
  const limit = Number(url.searchParams.get('limit') ?? 50);
  if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw invalid([{ field: 'limit', code: 'out_of_range', message: 'must be 1–200' }]);
  const cursor = url.searchParams.get('cursor');
  const start = cursor ? Number(Buffer.from(cursor, 'base64url').toString()) : 0;
  if (!Number.isInteger(start) || start < 0) throw new Problem(400, 'malformed_body', 'Bad cursor.');
  const slice = items.slice(start, start + limit);
  const next = start + limit < items.length ? Buffer.from(String(start + limit)).toString('base64url') : null;
  return { items: slice, next_cursor: next };
}

async function waitForProjection(req) {
  const raw = req.headers['x-min-position'];
  if (raw === undefined) return;
  const want = Number(raw);
  if (!Number.isInteger(want) || want < 0) throw new Problem(400, 'malformed_body', 'X-Min-Position must be a position.');
  const deadline = Date.now() + 5000;
  while (projection < want) {
    if (Date.now() > deadline) throw new Problem(503, 'projection_lagging', `The projection is at ${projection}, not yet ${want}.`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function handleQuery(req, p, url) {
  const path = url.pathname;
  const viewAll = is(p, 'admin', 'service', 'auditor');
  const own = (id) => {
    if (!viewAll && !(is(p, 'user') && p.sub === id)) throw new Problem(403, 'forbidden', 'You may only read your own data.');
  };

  if (path.startsWith('/api/v1/audit/')) {
    if (!is(p, 'admin', 'auditor')) throw new Problem(403, 'forbidden', 'Audit is for auditors and admins.');
    if (path === '/api/v1/audit/events') {
      const after = Number(url.searchParams.get('after') ?? 0);
      const limit = Number(url.searchParams.get('limit') ?? 50);
      const stream = url.searchParams.get('stream');
      const items = events.filter((e) => e.position > after && (!stream || e.stream_id === stream)).slice(0, limit);
      return { items, next_after: items.length ? items[items.length - 1].position : null };
    }
    if (path === '/api/v1/audit/verify') {
      let prev = '0'.repeat(64);
      let bad = null;
      for (const e of events) {
        const h = createHash('sha256').update(prev + JSON.stringify([e.position, e.stream_id, e.event_type, e.data])).digest('hex');
        if (e.prev_hash !== prev || e.hash !== h) {
          bad = e.position;
          break;
        }
        prev = e.hash;
      }
      const head = events[events.length - 1];
      return { ok: bad === null, checked: events.length, head_position: head?.position ?? 0, head_hash: head?.hash ?? null, first_bad_position: bad };
    }
    const m = /^\/api\/v1\/audit\/users\/([^/]+)\/balances$/.exec(path);
    if (m) {
      const asOf = url.searchParams.get('as_of');
      const at = url.searchParams.get('at_position');
      const until = asOf ? Date.parse(asOf) : Infinity;
      if (asOf && Number.isNaN(until)) throw invalid([{ field: 'as_of', code: 'invalid', message: 'must be RFC 3339' }]);
      const state = fold(at ? Number(at) : Infinity, until);
      return { user_id: m[1], balances: balancesOf(state, m[1]) };
    }
    throw new Problem(404, 'not_found', 'No such audit view.');
  }

  const state = fold(projection);
  if (path === '/api/v1/users') {
    if (!viewAll) throw new Problem(403, 'forbidden', 'Only admin, service and auditor list users.');
    return page([...state.users.values()].reverse(), url);
  }
  let m = /^\/api\/v1\/users\/([^/]+)$/.exec(path);
  if (m) {
    own(m[1]);
    const u = state.users.get(m[1]);
    if (!u) throw new Problem(404, 'not_found', 'No such user.');
    return u;
  }
  m = /^\/api\/v1\/users\/([^/]+)\/balances$/.exec(path);
  if (m) {
    own(m[1]);
    if (!state.users.get(m[1])) throw new Problem(404, 'not_found', 'No such user.');
    return { user_id: m[1], balances: balancesOf(state, m[1]) };
  }
  if (path === '/api/v1/transactions') {
    const uid = url.searchParams.get('user_id');
    if (!viewAll && uid !== p.sub) throw new Problem(403, 'forbidden', 'You may only read your own transactions.');
    const items = state.txs.filter((t) => !uid || t.user_id === uid || t.from_user_id === uid || t.to_user_id === uid).reverse();
    return page(items, url);
  }
  m = /^\/api\/v1\/transactions\/([^/]+)$/.exec(path);
  if (m) {
    const t = state.txs.find((x) => x.transaction_id === m[1]);
    if (!t) throw new Problem(404, 'not_found', 'No such transaction.');
    if (!viewAll && ![t.user_id, t.from_user_id, t.to_user_id].includes(p.sub)) throw new Problem(403, 'forbidden', 'Not yours.');
    return t;
  }
  throw new Problem(404, 'not_found', 'No such view.');
}

async function queryServer(req, res) {
  const url = new URL(req.url, 'http://x');
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new Problem(405, 'method_not_allowed', 'query-api takes only reads (gateway routing?).');
    const p = principal(req);
    await waitForProjection(req);
    const body = handleQuery(req, p, url);
    send(res, 200, body, { 'X-Projection-Position': String(projection) });
  } catch (e) {
    const h = { 'X-Projection-Position': String(projection) };
    if (e instanceof Problem) return sendProblem(res, e, e.code === 'projection_lagging' ? { ...h, 'Retry-After': '1' } : h);
    console.error(e);
    sendProblem(res, new Problem(500, 'internal', 'Internal error.'), h);
  }
}

function listen(handler, addr, name) {
  const [host, port] = addr.split(':');
  http.createServer(handler).listen(Number(port), host, () => console.log(`mock ${name} on http://${addr}`));
}

listen(commandServer, COMMAND_ADDR, 'command-api');
listen(queryServer, QUERY_ADDR, 'query-api');
