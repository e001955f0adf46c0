import { useEffect, useRef, useState, type FormEvent } from 'react';
import type { CommandAnswer, Transaction, User } from '../api';
import { BalancesTable } from '../components/BalancesTable';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { TextField } from '../components/Field';
import { Link } from '../components/Link';
import { Money } from '../components/Money';
import { PagerNav } from '../components/PagerNav';
import { ProblemAlert } from '../components/ProblemAlert';
import { useApp, useSession } from '../context';
import { formatTime, shortId } from '../format';
import { useCommand, useQuery } from '../hooks';
import { fieldMessages, messageForProblem } from '../messages';
import { back, currentCursor, firstPage, forward, loaded, type Pager } from '../pagination';
import { canCommand } from '../session';
import { signedAmount } from '../money';
import { RegisterForm } from './RegisterForm';

const TX_PAGE = 10;
/** After a 412: how often and how fast to re-read until the newer version is visible. */
const STALE_READS = 10;
const STALE_READ_DELAY_MS = 500;

/** One user: profile (edit, deactivate, erase), balances and transaction history. */
export function UserPage({ id }: { id: string }) {
  const { client } = useApp();
  const session = useSession();
  const isSelf = session.sub === id;
  const mayChange = canCommand(session.role) && (session.role !== 'user' || isSelf);
  const [notice, setNotice] = useState<string | null>(null);

  const user = useQuery(`user:${id}`, async (min, signal) => (await client.getUser(id, { minPosition: min, signal })).data);
  const balances = useQuery(`balances:${id}`, async (min, signal) => (await client.getBalances(id, { minPosition: min, signal })).data);

  /** After a command: everything on the page re-reads at (at least) its position. */
  const refreshAll = (position?: number) => {
    user.reload(position);
    balances.reload(position);
    setTxReload((n) => ({ n: n.n + 1, min: position }));
  };
  const [txReload, setTxReload] = useState<{ n: number; min?: number }>({ n: 0 });

  const notRegisteredSelf = isSelf && user.problem?.status === 404;
  // Refused or missing: one explanation is enough; balances and history would only repeat it.
  const unavailable = !notRegisteredSelf && (user.problem?.status === 403 || user.problem?.status === 404);
  const showDetails = !notRegisteredSelf && !unavailable;

  return (
    <div className="page">
      <p className="breadcrumb">
        {session.role === 'user' ? (isSelf ? 'Your account' : 'Another user') : <Link href="/users">Users</Link>} / <code>{id}</code>
      </p>
      <h1 data-testid="user-title">
        {user.data
          ? user.data.erased
            ? 'Erased user'
            : user.data.display_name ?? 'User'
          : isSelf
            ? 'Your account'
            : unavailable
              ? 'User not available'
              : 'User'}
      </h1>
      {notice ? (
        <p className="alert alert-success" role="status" data-testid="user-notice">
          {notice}
        </p>
      ) : null}

      {notRegisteredSelf ? (
        <section className="card">
          <p>You are signed in as a new user who is not registered yet.</p>
          <RegisterForm
            selfId={id}
            onRegistered={(a: CommandAnswer) => {
              setNotice(`Registered (log position #${a.position}).`);
              refreshAll(a.position);
            }}
          />
        </section>
      ) : (
        <ProblemAlert problem={user.problem} onRetry={() => user.reload()} context="Could not load the user" />
      )}

      {user.data ? (
        <ProfileCard
          user={user.data}
          mayChange={mayChange}
          onChanged={(msg, a) => {
            setNotice(msg);
            refreshAll(a?.position);
          }}
          onStale={() => user.reload()}
        />
      ) : null}

      {showDetails ? (
        <section className="card" aria-labelledby="balances-title" aria-busy={balances.loading}>
          <div className="card-head">
            <h2 id="balances-title">Balances</h2>
            {mayChange && user.data?.status === 'active' ? (
              <Link className="btn btn-secondary" href={`/money?user=${encodeURIComponent(id)}`}>
                Move money
              </Link>
            ) : null}
          </div>
          <ProblemAlert problem={balances.problem} onRetry={() => balances.reload()} context="Could not load balances" />
          {balances.data ? <BalancesTable balances={balances.data.balances} caption="Current balances" testId="balances" /> : null}
        </section>
      ) : null}

      {showDetails ? <TransactionHistory userId={id} reloadSignal={txReload} /> : null}
    </div>
  );
}

function ProfileCard({
  user,
  mayChange,
  onChanged,
  onStale,
}: {
  user: User;
  mayChange: boolean;
  onChanged: (message: string, answer?: CommandAnswer) => void;
  onStale: () => void;
}) {
  const { client } = useApp();
  const session = useSession();
  const edit = useCommand();
  const deactivate = useCommand();
  const erase = useCommand();
  const [email, setEmail] = useState(user.email ?? '');
  const [displayName, setDisplayName] = useState(user.display_name ?? '');
  const [confirm, setConfirm] = useState<'deactivate' | 'erase' | null>(null);
  const [reason, setReason] = useState('');
  const errors = fieldMessages(edit.problem, ['email', 'display_name']);

  // A newer version arrived (after our save, or a reload after 412): show its values.
  useEffect(() => {
    setEmail(user.email ?? '');
    setDisplayName(user.display_name ?? '');
  }, [user.version, user.email, user.display_name]);

  // 412: someone changed the profile since we loaded it. Fetch the current version; the
  // read model may not have the newer version yet (we do not know its position), so read
  // again a few times until a newer version shows up.
  const [waitingPast, setWaitingPast] = useState<number | null>(null);
  const staleReads = useRef(0);
  useEffect(() => {
    if (edit.problem?.status === 412) {
      staleReads.current = 0;
      setWaitingPast(user.version);
      onStale();
    }
  }, [edit.problem]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    if (waitingPast === null) return;
    if (user.version > waitingPast || staleReads.current >= STALE_READS) {
      setWaitingPast(null);
      return;
    }
    const t = window.setTimeout(() => {
      staleReads.current += 1;
      onStale();
    }, STALE_READ_DELAY_MS);
    return () => window.clearTimeout(t);
  }, [waitingPast, user]); // eslint-disable-line react-hooks/exhaustive-deps

  const onSave = async (e: FormEvent) => {
    e.preventDefault();
    const patch: { email?: string; display_name?: string } = {};
    if (email.trim() !== (user.email ?? '')) patch.email = email.trim();
    if (displayName !== (user.display_name ?? '')) patch.display_name = displayName;
    if (Object.keys(patch).length === 0) {
      onChanged('Nothing changed.');
      return;
    }
    const a = await edit.submit({ id: user.user_id, version: user.version, patch }, (key) =>
      client.updateProfile(user.user_id, user.version, patch, { idempotencyKey: key }),
    );
    if (a) onChanged(`Profile saved (version ${a.version ?? '?'}, log position #${a.position}).`, a);
  };

  const onDeactivate = async () => {
    const r = reason.trim() || undefined;
    const a = await deactivate.submit({ id: user.user_id, op: 'deactivate', reason: r }, (key) =>
      client.deactivateUser(user.user_id, r, { idempotencyKey: key }),
    );
    if (a) {
      setConfirm(null);
      onChanged(`User deactivated (log position #${a.position}).`, a);
    }
  };

  const onErase = async () => {
    const a = await erase.submit({ id: user.user_id, op: 'erase' }, (key) => client.erasePersonalData(user.user_id, { idempotencyKey: key }));
    if (a) {
      setConfirm(null);
      onChanged(`Personal data erased (log position #${a.position}).`, a);
    }
  };

  const versionConflict = edit.problem?.code === 'version_mismatch';

  return (
    <section className="card" aria-labelledby="profile-title" data-testid="profile">
      <h2 id="profile-title">Profile</h2>
      <dl className="facts">
        <dt>User id</dt>
        <dd>
          <code data-testid="profile-user-id">{user.user_id}</code>
        </dd>
        <dt>Status</dt>
        <dd>
          <span className={`status status-${user.status}`} data-testid="profile-status">
            {user.status}
          </span>
          {user.erased ? <span className="status status-erased">personal data erased</span> : null}
        </dd>
        <dt>Version</dt>
        <dd>{user.version}</dd>
        <dt>Registered</dt>
        <dd>{formatTime(user.created_at)}</dd>
        <dt>Updated</dt>
        <dd>{formatTime(user.updated_at)}</dd>
      </dl>

      {user.erased ? (
        <p className="notice">E-mail and name were erased: the keys that encrypted them are destroyed, so they are unreadable everywhere, the event log included.</p>
      ) : mayChange ? (
        <form onSubmit={onSave} noValidate aria-label="Edit profile">
          <div className="row">
            <TextField id="edit-email" label="E-mail" type="email" value={email} onChange={(e) => setEmail(e.target.value)} error={errors.email} maxLength={254} />
            <TextField id="edit-display-name" label="Display name" value={displayName} onChange={(e) => setDisplayName(e.target.value)} error={errors.display_name} />
          </div>
          {versionConflict ? (
            <div className="alert alert-warning" role="alert" data-testid="version-conflict">
              <p className="alert-title">{messageForProblem(edit.problem!)}</p>
              <p className="alert-meta">
                <span className="badge">412</span> <code>version_mismatch</code> — your edit was based on an older copy.{' '}
                {waitingPast !== null ? 'Loading the latest version…' : `The form now shows version ${user.version}.`}
              </p>
            </div>
          ) : (
            <ProblemAlert problem={edit.problem} context="Saving failed" />
          )}
          <div className="actions">
            <button type="submit" className="btn btn-primary" disabled={edit.pending} aria-busy={edit.pending}>
              {edit.pending ? 'Saving…' : 'Save changes'}
            </button>
            <span className="hint-inline">Saved only if nobody changed it since version {user.version} (If-Match).</span>
          </div>
        </form>
      ) : (
        <dl className="facts">
          <dt>E-mail</dt>
          <dd data-testid="profile-email">{user.email ?? '—'}</dd>
          <dt>Display name</dt>
          <dd>{user.display_name ?? '—'}</dd>
        </dl>
      )}

      {mayChange ? (
        <div className="danger-zone">
          <h3>Account actions</h3>
          <div className="actions">
            {user.status === 'active' ? (
              <button type="button" className="btn btn-warning" onClick={() => setConfirm('deactivate')}>
                Deactivate…
              </button>
            ) : null}
            {!user.erased && session.role !== 'auditor' ? (
              <button type="button" className="btn btn-danger" onClick={() => setConfirm('erase')}>
                Erase personal data…
              </button>
            ) : null}
          </div>
        </div>
      ) : null}

      <ConfirmDialog
        open={confirm === 'deactivate'}
        title="Deactivate this user?"
        confirmLabel="Deactivate"
        danger
        busy={deactivate.pending}
        onConfirm={onDeactivate}
        onCancel={() => {
          setConfirm(null);
          deactivate.reset();
        }}
      >
        <p>A deactivated user can no longer take part in deposits, withdrawals or transfers. Balances and history stay.</p>
        <TextField id="deactivate-reason" label="Reason (optional)" value={reason} onChange={(e) => setReason(e.target.value)} maxLength={500} />
        <ProblemAlert problem={deactivate.problem} context="Deactivation failed" />
      </ConfirmDialog>

      <ConfirmDialog
        open={confirm === 'erase'}
        title="Erase personal data?"
        confirmLabel="Erase for good"
        danger
        busy={erase.pending}
        onConfirm={onErase}
        onCancel={() => {
          setConfirm(null);
          erase.reset();
        }}
      >
        <p>
          The e-mail address and display name of <strong>{user.display_name ?? shortId(user.user_id)}</strong> become unreadable everywhere, including the
          audit log. This cannot be undone. Balances and transactions stay.
        </p>
        <ProblemAlert problem={erase.problem} context="Erasure failed" />
      </ConfirmDialog>
    </section>
  );
}

function TransactionHistory({ userId, reloadSignal }: { userId: string; reloadSignal: { n: number; min?: number } }) {
  const { client } = useApp();
  const [pager, setPager] = useState<Pager>(firstPage);
  const cursor = currentCursor(pager);
  const txs = useQuery(`tx:${userId}:${cursor ?? ''}`, async (min, signal) =>
    (await client.listTransactions({ user_id: userId, limit: TX_PAGE, cursor }, { minPosition: min, signal })).data,
  );
  useEffect(() => {
    if (txs.data) setPager((p) => loaded(p, txs.data?.next_cursor));
  }, [txs.data]);
  useEffect(() => {
    if (reloadSignal.n > 0) {
      setPager(firstPage());
      txs.reload(reloadSignal.min);
    }
  }, [reloadSignal]); // eslint-disable-line react-hooks/exhaustive-deps

  return (
    <section className="card" aria-labelledby="tx-title" aria-busy={txs.loading}>
      <div className="card-head">
        <h2 id="tx-title">Transactions</h2>
        <button type="button" className="btn btn-secondary" onClick={() => txs.reload()} disabled={txs.loading}>
          Refresh
        </button>
      </div>
      <ProblemAlert problem={txs.problem} onRetry={() => txs.reload()} context="Could not load transactions" />
      {txs.data ? (
        txs.data.items.length === 0 ? (
          <p className="empty">No transactions yet.</p>
        ) : (
          <div className="table-scroll">
            <table className="table" data-testid="transactions">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Type</th>
                  <th scope="col">Counterparty</th>
                  <th scope="col" className="num">Amount</th>
                  <th scope="col" className="num">Position</th>
                </tr>
              </thead>
              <tbody>
                {txs.data.items.map((t) => (
                  <TxRow key={t.transaction_id} tx={t} userId={userId} />
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : txs.loading ? (
        <p className="loading">Loading…</p>
      ) : null}
      <PagerNav label="Transactions" pager={pager} loading={txs.loading} onBack={() => setPager(back)} onForward={() => setPager(forward)} />
    </section>
  );
}

function TxRow({ tx, userId }: { tx: Transaction; userId: string }) {
  const other = tx.type === 'transfer' ? (tx.from_user_id === userId ? tx.to_user_id : tx.from_user_id) : null;
  const label = tx.type === 'transfer' ? (tx.from_user_id === userId ? 'transfer out' : 'transfer in') : tx.type;
  return (
    <tr data-type={tx.type}>
      <td>{formatTime(tx.recorded_at)}</td>
      <td>{label}</td>
      <td>{other ? <Link href={`/users/${other}`}><code title={other}>{shortId(other)}</code></Link> : '—'}</td>
      <td className="num">
        <Money minor={signedAmount(tx, userId)} currency={tx.currency} signed />
      </td>
      <td className="num">#{tx.position}</td>
    </tr>
  );
}
