// From a problem's stable `code` to words a person understands. Keyed on `code` only,
// never on the server's `title`/`detail` text, which may change.
import type { Problem } from './api';

const CODE_MESSAGES: Record<string, string> = {
  malformed_body: 'The request was not understood (malformed data).',
  unauthenticated: 'You are not signed in, or your session has expired. Please sign in again.',
  forbidden: 'You are not allowed to do this with your role.',
  not_found: 'Not found: it does not exist, or it is not visible to you.',
  insufficient_funds: 'Not enough money in that currency for this amount.',
  user_inactive: 'That user is deactivated and cannot take part in transactions.',
  email_taken: 'That e-mail address is already registered.',
  idempotency_key_reused: 'This submission was already used for a different request. Submit the form again.',
  concurrency_conflict: 'Someone else changed this at the same moment. Please try again.',
  version_mismatch: 'Someone else changed this since you opened it. The latest version has been loaded; review it and save again.',
  body_too_large: 'The request is too large.',
  unsupported_media_type: 'The request was sent in a format the server does not accept.',
  validation_failed: 'Some fields need attention.',
  rate_limited: 'Too many requests in a short time. Wait a moment and retry.',
  unavailable: 'The service is temporarily unavailable. Retry in a moment.',
  outcome_unknown:
    'We could not confirm whether this was carried out. Submit the same form again: it is never applied twice, and you will see the result.',
  projection_lagging: 'Your change is saved, but the view has not caught up with it yet. Retry in a moment.',
  network_error: 'The server could not be reached. Check the connection and retry.',
  malformed_answer: 'The server answered something unexpected.',
  server_error: 'Something went wrong on the server. Retry; if it keeps happening, quote the reference below.',
  same_user: 'A transfer needs two different users.',
  unknown_currency: 'That currency is not supported.',
};

/** Field-level codes (422 `errors[].code`) that deserve a friendlier text than the server's. */
const FIELD_CODE_MESSAGES: Record<string, string> = {
  required: 'This field is required.',
  missing: 'This field is required.',
  invalid_email: 'Enter a valid e-mail address.',
  too_long: 'This is too long.',
  too_short: 'This is too short.',
  empty: 'This must not be empty.',
  out_of_range: 'This value is out of the allowed range.',
  invalid_currency: 'Choose one of the supported currencies.',
  unknown_currency: 'Choose one of the supported currencies.',
  invalid_uuid: 'Enter a valid user id (UUID).',
  same_user: 'Choose a different user than the sender.',
};

/** The sentence to show for a problem. Unknown codes fall back to the server's own words. */
export function messageForProblem(p: Problem): string {
  const known = CODE_MESSAGES[p.code];
  if (known) return known;
  if (p.detail) return p.detail;
  if (p.title && !/^HTTP \d+$/.test(p.title)) return p.title;
  if (p.status >= 500) return CODE_MESSAGES.server_error;
  return `The request failed (HTTP ${p.status}).`;
}

/** The part of a field path that names a form field: `items[2].currency` -> `currency`. */
export function fieldKey(path: string): string {
  const parts = path.replace(/^\/+/, '').split(/[./]/).filter(Boolean);
  const last = parts.length > 0 ? parts[parts.length - 1] : path;
  return last.replace(/\[\d+\]$/, '');
}

/**
 * `errors[]` of a 422 as field -> message, ready to put next to the inputs. Several errors
 * on one field are joined. Errors with no field (or a field no input shows) are returned
 * under `''` so a form can list them above its button.
 */
export function fieldMessages(p: Problem | null | undefined, knownFields?: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (!p) return out;
  for (const e of p.errors) {
    let key = fieldKey(e.field);
    if (knownFields && !knownFields.includes(key)) key = '';
    // The server's message names the rule that failed; the code table covers a bare code.
    const text = e.message.trim() ? sentence(e.message) : FIELD_CODE_MESSAGES[e.code] ?? 'This value is not valid.';
    out[key] = out[key] ? `${out[key]} ${text}` : text;
  }
  return out;
}

function sentence(s: string): string {
  const t = s.trim();
  const capital = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** Whether a failure is worth a plain "retry" button (nothing about the request was wrong). */
export function isTransient(p: Problem): boolean {
  return p.status === 0 || p.status === 429 || p.status === 502 || p.status === 503 || p.status === 504 || p.status === 500;
}
