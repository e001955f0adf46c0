import { useEffect, useState, type FormEvent } from 'react';
import { CURRENCIES, type CommandAnswer, type Currency, type TransactionCommand } from '../api';
import { BalancesTable } from '../components/BalancesTable';
import { SelectField, TextField } from '../components/Field';
import { Link } from '../components/Link';
import { ProblemAlert } from '../components/ProblemAlert';
import { useApp, useSession } from '../context';
import { useCommand, useQuery } from '../hooks';
import { fieldMessages } from '../messages';
import { currencyExponent, formatMoney, parseAmount } from '../money';
import { canListUsers } from '../session';

type Kind = 'deposit' | 'withdrawal' | 'transfer';
const KINDS: { kind: Kind; label: string; text: string }[] = [
  { kind: 'deposit', label: 'Deposit', text: 'Money comes in from outside.' },
  { kind: 'withdrawal', label: 'Withdraw', text: 'Money leaves to outside; never below zero.' },
  { kind: 'transfer', label: 'Transfer', text: 'From one user to another, both in one step.' },
];
const FIELDS = ['user_id', 'from_user_id', 'to_user_id', 'amount', 'currency'] as const;

interface Done {
  answer: CommandAnswer;
  summary: string;
  userIds: string[];
}

/** Deposit, withdraw, transfer; afterwards the balances of everyone involved, read at the command's position. */
export function MoneyPage({ initialUserId }: { initialUserId?: string }) {
  const { client } = useApp();
  const session = useSession();
  const self = session.role === 'user' ? session.sub : undefined;
  const [kind, setKind] = useState<Kind>('deposit');
  const [userId, setUserId] = useState(self ?? initialUserId ?? '');
  const [toUserId, setToUserId] = useState('');
  const [amount, setAmount] = useState('');
  const [currency, setCurrency] = useState<Currency>('EUR');
  const [local, setLocal] = useState<Record<string, string>>({});
  const [done, setDone] = useState<Done | null>(null);
  const cmd = useCommand();
  const serverErrors = fieldMessages(cmd.problem, FIELDS);
  const err = (f: string) => local[f] ?? serverErrors[f];
  const userField = kind === 'transfer' ? 'from_user_id' : 'user_id';

  // Names for the id inputs (roles that may list users).
  const known = useQuery(canListUsers(session.role) ? 'money-users' : null, async (_min, signal) =>
    (await client.listUsers({ limit: 200 }, { signal })).data.items,
  );

  useEffect(() => {
    if (self) setUserId(self);
  }, [self]);

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    const problems: Record<string, string> = {};
    const from = userId.trim();
    const to = toUserId.trim();
    if (!from) problems[userField] = kind === 'transfer' ? 'Choose who sends the money.' : 'Choose a user.';
    if (kind === 'transfer' && !to) problems.to_user_id = 'Choose who receives the money.';
    const parsed = parseAmount(amount, currency);
    if (!parsed.ok) problems.amount = parsed.error;
    setLocal(problems);
    if (Object.keys(problems).length > 0 || !parsed.ok) return;

    const body: TransactionCommand =
      kind === 'transfer'
        ? { type: 'transfer', from_user_id: from, to_user_id: to, amount: parsed.minor, currency }
        : { type: kind, user_id: from, amount: parsed.minor, currency };
    const answer = await cmd.submit(body, (key) => client.recordTransaction(body, { idempotencyKey: key }));
    if (answer) {
      const what = KINDS.find((k) => k.kind === kind)?.label ?? kind;
      setDone({
        answer,
        summary: `${what} of ${formatMoney(parsed.minor, currency)} done`,
        userIds: kind === 'transfer' ? [from, to] : [from],
      });
      setAmount('');
    }
  };

  const exp = currencyExponent(currency);
  return (
    <div className="page">
      <h1>Move money</h1>
      <section className="card">
        <form onSubmit={onSubmit} noValidate aria-label="Money command" data-testid="money-form">
          <fieldset className="segmented">
            <legend>What</legend>
            {KINDS.map((k) => (
              <label key={k.kind} className={kind === k.kind ? 'selected' : ''}>
                <input
                  type="radio"
                  name="kind"
                  value={k.kind}
                  checked={kind === k.kind}
                  onChange={() => {
                    setKind(k.kind);
                    setLocal({});
                    cmd.reset();
                  }}
                  data-testid={`kind-${k.kind}`}
                />
                <span>{k.label}</span>
              </label>
            ))}
          </fieldset>
          <p className="hint">{KINDS.find((k) => k.kind === kind)?.text}</p>

          <div className="row">
            <TextField
              id={userField}
              label={kind === 'transfer' ? 'From user' : 'User'}
              value={userId}
              onChange={(e) => setUserId(e.target.value)}
              readOnly={!!self}
              list={known.data ? 'known-users' : undefined}
              autoComplete="off"
              spellCheck={false}
              placeholder="user id"
              error={err(userField)}
              hint={self ? 'You can only move your own money.' : undefined}
            />
            {kind === 'transfer' ? (
              <TextField
                id="to_user_id"
                label="To user"
                value={toUserId}
                onChange={(e) => setToUserId(e.target.value)}
                list={known.data ? 'known-users' : undefined}
                autoComplete="off"
                spellCheck={false}
                placeholder="user id"
                error={err('to_user_id')}
              />
            ) : null}
          </div>
          {known.data ? (
            <datalist id="known-users">
              {known.data.map((u) => (
                <option key={u.user_id} value={u.user_id}>
                  {u.erased ? 'erased' : `${u.display_name ?? ''} <${u.email ?? ''}>`}
                </option>
              ))}
            </datalist>
          ) : null}

          <div className="row">
            <TextField
              id="amount"
              label="Amount"
              inputMode="decimal"
              autoComplete="off"
              value={amount}
              onChange={(e) => setAmount(e.target.value)}
              error={err('amount')}
              hint={exp === 0 ? `Whole ${currency}.` : `In ${currency}, up to ${exp} decimals (e.g. 12.50).`}
            />
            <SelectField id="currency" label="Currency" value={currency} onChange={(e) => setCurrency(CURRENCIES.find((c) => c === e.target.value) ?? currency)} error={err('currency')}>
              {CURRENCIES.map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </SelectField>
          </div>

          <ProblemAlert problem={cmd.problem} context="The transaction was not recorded" />
          <button type="submit" className="btn btn-primary" disabled={cmd.pending} aria-busy={cmd.pending} data-testid="money-submit">
            {cmd.pending ? 'Sending…' : KINDS.find((k) => k.kind === kind)?.label}
          </button>
        </form>
      </section>

      {done ? <AfterCommand done={done} /> : null}
    </div>
  );
}

/** The balances of everyone a command touched, read with X-Min-Position = its position. */
function AfterCommand({ done }: { done: Done }) {
  return (
    <section className="card" aria-labelledby="after-title">
      <h2 id="after-title">Result</h2>
      <p className="alert alert-success" role="status" data-testid="money-done" data-transaction-id={done.answer.transaction_id} data-position={done.answer.position}>
        {done.summary}: transaction <code>{done.answer.transaction_id ?? '—'}</code>, log position #{done.answer.position}.
      </p>
      <div className="grid-2">
        {done.userIds.map((id) => (
          <BalancesAt key={`${id}:${done.answer.position}`} userId={id} position={done.answer.position} />
        ))}
      </div>
    </section>
  );
}

function BalancesAt({ userId, position }: { userId: string; position: number }) {
  const { client } = useApp();
  const q = useQuery(`after:${userId}:${position}`, async (_min, signal) => (await client.getBalances(userId, { minPosition: position, signal })).data);
  return (
    <div aria-busy={q.loading}>
      <h3>
        <Link href={`/users/${userId}`}>
          <code>{userId}</code>
        </Link>
      </h3>
      <ProblemAlert problem={q.problem} onRetry={() => q.reload(position)} context="Could not load balances" />
      {q.data ? <BalancesTable balances={q.data.balances} caption="Balances now" testId={`after-balances-${userId}`} /> : q.loading ? <p className="loading">Waiting for the view to catch up…</p> : null}
    </div>
  );
}
