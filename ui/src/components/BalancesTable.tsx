import type { Balance } from '../api';
import { Money } from './Money';

export function BalancesTable({ balances, caption, testId }: { balances: Balance[]; caption: string; testId?: string }) {
  if (balances.length === 0) {
    return (
      <p className="empty" data-testid={testId}>
        {caption}: no money yet.
      </p>
    );
  }
  const sorted = [...balances].sort((a, b) => a.currency.localeCompare(b.currency));
  return (
    <table className="table" data-testid={testId}>
      <caption>{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Currency</th>
          <th scope="col" className="num">Balance</th>
        </tr>
      </thead>
      <tbody>
        {sorted.map((b) => (
          <tr key={b.currency} data-currency={b.currency} data-amount={b.amount}>
            <th scope="row">{b.currency}</th>
            <td className="num">
              <Money minor={b.amount} currency={b.currency} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
