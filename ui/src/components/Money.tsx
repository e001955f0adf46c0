import { formatMinor } from '../money';

export function Money({ minor, currency, signed }: { minor: number; currency: string; signed?: boolean }) {
  const text = formatMinor(minor, currency);
  return (
    <span className={`money${signed && minor < 0 ? ' money-neg' : ''}${signed && minor > 0 ? ' money-pos' : ''}`}>
      {signed && minor > 0 ? '+' : ''}
      {text} <span className="currency">{currency}</span>
    </span>
  );
}
