import { describe, expect, it } from 'vitest';
import { parseProblem, localProblem } from './api';
import { beginAttempt, finishAttempt, fingerprint, type Attempt } from './submission';

let n = 0;
const newKey = () => `key-${++n}`;

describe('idempotency keys per submission', () => {
  it('fingerprints ignore key order and undefined fields', () => {
    expect(fingerprint({ a: 1, b: { c: 2, d: 3 } })).toBe(fingerprint({ b: { d: 3, c: 2 }, a: 1, e: undefined }));
    expect(fingerprint({ a: 1 })).not.toBe(fingerprint({ a: 2 }));
  });

  it('reuses the key when the same payload is retried after an uncertain failure', () => {
    const fp = fingerprint({ type: 'deposit', amount: 5 });
    let a: Attempt = beginAttempt(null, fp, newKey);
    a = finishAttempt(a, { ok: false, problem: localProblem(0, 'network_error', '', '') });
    expect(a.state).toBe('retryable');
    const retry = beginAttempt(a, fp, newKey);
    expect(retry.key).toBe(a.key);

    const after503 = finishAttempt(retry, { ok: false, problem: parseProblem(503, null, '') });
    expect(beginAttempt(after503, fp, newKey).key).toBe(a.key);
    const after500 = finishAttempt(retry, { ok: false, problem: parseProblem(500, null, '') });
    expect(beginAttempt(after500, fp, newKey).key).toBe(a.key);
    const after429 = finishAttempt(retry, { ok: false, problem: parseProblem(429, null, '') });
    expect(beginAttempt(after429, fp, newKey).key).toBe(a.key);
    // The command may have been applied: the retry must carry the same key to learn it.
    const unknown = parseProblem(503, 'application/problem+json', '{"code":"outcome_unknown"}');
    const afterUnknown = finishAttempt(retry, { ok: false, problem: unknown });
    expect(afterUnknown.state).toBe('retryable');
    expect(beginAttempt(afterUnknown, fp, newKey).key).toBe(a.key);
  });

  it('reuses the key for a double submit while the first is pending', () => {
    const fp = fingerprint({ x: 1 });
    const a = beginAttempt(null, fp, newKey);
    expect(beginAttempt(a, fp, newKey).key).toBe(a.key);
  });

  it('takes a new key when the payload changes', () => {
    const a = finishAttempt(beginAttempt(null, fingerprint({ amount: 5 }), newKey), { ok: false, problem: parseProblem(503, null, '') });
    expect(beginAttempt(a, fingerprint({ amount: 6 }), newKey).key).not.toBe(a.key);
  });

  it('takes a new key after success (the same deposit twice is two deposits)', () => {
    const fp = fingerprint({ amount: 5 });
    const a = finishAttempt(beginAttempt(null, fp, newKey), { ok: true });
    expect(a.state).toBe('settled');
    expect(beginAttempt(a, fp, newKey).key).not.toBe(a.key);
  });

  it('takes a new key after a definite rejection', () => {
    const fp = fingerprint({ amount: 5 });
    for (const status of [400, 403, 409, 412, 422]) {
      const a = finishAttempt(beginAttempt(null, fp, newKey), { ok: false, problem: parseProblem(status, null, '') });
      expect(a.state).toBe('settled');
      expect(beginAttempt(a, fp, newKey).key).not.toBe(a.key);
    }
  });
});
