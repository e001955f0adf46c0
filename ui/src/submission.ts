// Idempotency keys for form submissions. One submission (the same form with the same
// values) keeps its key across retries, so a retry after a timeout or a 503 cannot apply
// the command twice: the server replays the first answer. A changed payload, a success or
// a definite rejection starts a new submission with a new key.
import type { Problem } from './api';

export type AttemptState = 'pending' | 'retryable' | 'settled';

export interface Attempt {
  key: string;
  fingerprint: string;
  state: AttemptState;
}

/** Canonical JSON (object keys sorted) so equal payloads give equal fingerprints. */
export function fingerprint(value: unknown): string {
  return JSON.stringify(canonical(value));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as Record<string, unknown>).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = canonical(x);
    }
    return out;
  }
  return v;
}

/**
 * The attempt to send now. The previous key is reused only when the same payload is sent
 * again after an outcome that left it unknown whether the command ran (network error,
 * 5xx, 429) or while it is still pending (a double submit).
 */
export function beginAttempt(prev: Attempt | null, payloadFingerprint: string, newKey: () => string): Attempt {
  if (prev && prev.fingerprint === payloadFingerprint && prev.state !== 'settled') {
    return { ...prev, state: 'pending' };
  }
  return { key: newKey(), fingerprint: payloadFingerprint, state: 'pending' };
}

/** Whether the command may or may not have been applied, so a retry must reuse the key. */
export function outcomeIsUncertain(p: Problem): boolean {
  return p.status === 0 || p.status === 429 || p.status >= 500;
}

/** The attempt after an answer: success or a definite 4xx settles it; the rest stay retryable. */
export function finishAttempt(a: Attempt, outcome: { ok: true } | { ok: false; problem: Problem }): Attempt {
  if (outcome.ok) return { ...a, state: 'settled' };
  return { ...a, state: outcomeIsUncertain(outcome.problem) ? 'retryable' : 'settled' };
}
