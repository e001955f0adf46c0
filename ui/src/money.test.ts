import { describe, expect, it } from 'vitest';
import { formatMinor, formatMoney, parseAmount, signedAmount } from './money';

describe('parseAmount', () => {
  it('converts major units to minor units exactly', () => {
    expect(parseAmount('12.34', 'EUR')).toEqual({ ok: true, minor: 1234 });
    expect(parseAmount('0.1', 'EUR')).toEqual({ ok: true, minor: 10 });
    expect(parseAmount('1,5', 'USD')).toEqual({ ok: true, minor: 150 });
    expect(parseAmount('1 000', 'EUR')).toEqual({ ok: true, minor: 100000 });
    expect(parseAmount('500', 'JPY')).toEqual({ ok: true, minor: 500 });
    expect(parseAmount('0.29', 'EUR')).toEqual({ ok: true, minor: 29 }); // 0.29*100 is 28.999… in floats
    expect(parseAmount('10000000000000', 'EUR')).toEqual({ ok: true, minor: 1_000_000_000_000_000 });
  });

  it('rejects what the API would', () => {
    expect(parseAmount('', 'EUR').ok).toBe(false);
    expect(parseAmount('0', 'EUR').ok).toBe(false);
    expect(parseAmount('-1', 'EUR').ok).toBe(false);
    expect(parseAmount('1.234', 'EUR').ok).toBe(false);
    expect(parseAmount('1.5', 'JPY').ok).toBe(false);
    expect(parseAmount('abc', 'EUR').ok).toBe(false);
    expect(parseAmount('10000000000000.01', 'EUR').ok).toBe(false);
  });
});

describe('formatMinor', () => {
  it('formats minor units per currency', () => {
    expect(formatMinor(1234, 'EUR')).toBe('12.34');
    expect(formatMinor(5, 'EUR')).toBe('0.05');
    expect(formatMinor(-5, 'EUR')).toBe('-0.05');
    expect(formatMinor(123456789, 'USD')).toBe('1,234,567.89');
    expect(formatMinor(1500, 'JPY')).toBe('1,500');
    expect(formatMoney(100, 'GBP')).toBe('1.00 GBP');
  });
});

describe('signedAmount', () => {
  it('is positive for money in, negative for money out', () => {
    expect(signedAmount({ type: 'deposit', amount: 5 }, 'a')).toBe(5);
    expect(signedAmount({ type: 'withdrawal', amount: 5 }, 'a')).toBe(-5);
    expect(signedAmount({ type: 'transfer', amount: 5, from_user_id: 'a' }, 'a')).toBe(-5);
    expect(signedAmount({ type: 'transfer', amount: 5, from_user_id: 'b' }, 'a')).toBe(5);
  });
});
