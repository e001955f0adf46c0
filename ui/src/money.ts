// Amounts are integers in minor units on the wire (API.md). People type and read major
// units, so these convert exactly, with strings and BigInt, never through floating point.

const EXPONENTS: Record<string, number> = { JPY: 0, KRW: 0, CLP: 0, ISK: 0, BHD: 3, KWD: 3, OMR: 3, TND: 3 };

export const MAX_AMOUNT = 1_000_000_000_000_000; // 10^15 minor units

export function currencyExponent(currency: string): number {
  return EXPONENTS[currency.toUpperCase()] ?? 2;
}

export type AmountParse = { ok: true; minor: number } | { ok: false; error: string };

/** "12.34" EUR -> 1234. Accepts a comma as decimal separator and thin spaces or _ as grouping. */
export function parseAmount(input: string, currency: string): AmountParse {
  const exp = currencyExponent(currency);
  const s = input.trim().replace(/[\s_\u202f]/g, '').replace(',', '.');
  if (s === '') return { ok: false, error: 'Enter an amount.' };
  const m = /^(\d+)(?:\.(\d*))?$/.exec(s);
  if (!m) return { ok: false, error: 'Enter a positive number, like 12.50.' };
  const whole = m[1];
  const frac = m[2] ?? '';
  if (frac.length > exp) {
    return { ok: false, error: exp === 0 ? `${currency} has no fractional units.` : `At most ${exp} decimal places for ${currency}.` };
  }
  const minor = BigInt(whole) * 10n ** BigInt(exp) + BigInt((frac + '0'.repeat(exp)).slice(0, exp) || '0');
  if (minor < 1n) return { ok: false, error: 'The amount must be greater than zero.' };
  if (minor > BigInt(MAX_AMOUNT)) return { ok: false, error: 'The amount is too large.' };
  return { ok: true, minor: Number(minor) };
}

/** 1234 EUR -> "12.34"; -5 EUR -> "-0.05". */
export function formatMinor(minor: number, currency: string): string {
  const exp = currencyExponent(currency);
  const neg = minor < 0;
  const digits = BigInt(Math.abs(Math.trunc(minor))).toString();
  let whole = digits;
  let frac = '';
  if (exp > 0) {
    const padded = digits.padStart(exp + 1, '0');
    whole = padded.slice(0, -exp);
    frac = padded.slice(-exp);
  }
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${neg ? '-' : ''}${grouped}${frac ? `.${frac}` : ''}`;
}

export function formatMoney(minor: number, currency: string): string {
  return `${formatMinor(minor, currency)} ${currency}`;
}

/** A transaction's amount from one user's point of view: money in is positive. */
export function signedAmount(
  t: { type: string; amount: number; from_user_id?: string | null },
  userId: string,
): number {
  if (t.type === 'withdrawal') return -t.amount;
  if (t.type === 'transfer') return t.from_user_id === userId ? -t.amount : t.amount;
  return t.amount;
}
