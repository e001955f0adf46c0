import { describe, expect, it } from 'vitest';
import { localProblem, parseProblem } from './api';
import { fieldKey, fieldMessages, isTransient, messageForProblem } from './messages';

describe('messageForProblem', () => {
  it('maps known codes to human text', () => {
    expect(messageForProblem(parseProblem(409, 'application/problem+json', '{"code":"insufficient_funds","detail":"balance 3 < 5"}'))).toMatch(/Not enough money/);
    expect(messageForProblem(parseProblem(403, null, ''))).toMatch(/not allowed/);
    expect(messageForProblem(parseProblem(412, 'application/problem+json', '{"code":"version_mismatch"}'))).toMatch(/changed this since/);
    expect(messageForProblem(parseProblem(503, 'application/problem+json', '{"code":"projection_lagging"}'))).toMatch(/not caught up/);
    expect(messageForProblem(parseProblem(503, 'application/problem+json', '{"code":"outcome_unknown"}'))).toMatch(/never applied twice/);
  });

  it('falls back to the detail, then the title, then the status', () => {
    expect(messageForProblem(parseProblem(409, 'application/json', '{"code":"brand_new","detail":"Something specific."}'))).toBe('Something specific.');
    expect(messageForProblem(parseProblem(409, 'application/json', '{"code":"brand_new","title":"Odd"}'))).toBe('Odd');
    expect(messageForProblem(parseProblem(418, null, ''))).toBe('The request failed (HTTP 418).');
    expect(messageForProblem(localProblem(599, 'x', 'HTTP 599', ''))).toMatch(/went wrong on the server/);
  });
});

describe('fieldMessages', () => {
  const problem = parseProblem(
    422,
    'application/problem+json',
    JSON.stringify({
      code: 'validation_failed',
      errors: [
        { field: 'email', code: 'invalid_email', message: 'not a valid e-mail address' },
        { field: 'display_name', code: 'too_long', message: '' },
        { field: 'display_name', code: 'empty', message: 'must not be blank' },
        { field: 'items[2].currency', code: 'unknown_currency', message: '' },
        { field: 'mystery', code: 'x', message: 'something else' },
      ],
    }),
  );

  it('puts each error next to its field, sentence-cased', () => {
    const m = fieldMessages(problem);
    expect(m.email).toBe('Not a valid e-mail address.');
    expect(m.display_name).toBe('This is too long. Must not be blank.');
    expect(m.currency).toBe('Choose one of the supported currencies.');
  });

  it('collects errors for fields the form does not show under the empty key', () => {
    const m = fieldMessages(problem, ['email', 'display_name']);
    expect(m['']).toBe('Choose one of the supported currencies. Something else.');
    expect(m.mystery).toBeUndefined();
  });

  it('handles no problem', () => {
    expect(fieldMessages(null)).toEqual({});
  });

  it('reduces JSON paths to a field name', () => {
    expect(fieldKey('amount')).toBe('amount');
    expect(fieldKey('/to_user_id')).toBe('to_user_id');
    expect(fieldKey('items[2].currency')).toBe('currency');
    expect(fieldKey('tags[0]')).toBe('tags');
  });
});

describe('isTransient', () => {
  it('offers a retry for network, rate limit and availability problems only', () => {
    expect(isTransient(localProblem(0, 'network_error', '', ''))).toBe(true);
    expect(isTransient(parseProblem(429, null, ''))).toBe(true);
    expect(isTransient(parseProblem(503, null, ''))).toBe(true);
    expect(isTransient(parseProblem(409, null, ''))).toBe(false);
    expect(isTransient(parseProblem(422, null, ''))).toBe(false);
  });
});
