import { useEffect, useState } from 'react';
import type { CommandAnswer } from '../api';
import { Link } from '../components/Link';
import { PagerNav } from '../components/PagerNav';
import { ProblemAlert } from '../components/ProblemAlert';
import { useApp, useSession } from '../context';
import { useQuery } from '../hooks';
import { back, currentCursor, firstPage, forward, loaded, type Pager } from '../pagination';
import { navigate } from '../router';
import { canCommand } from '../session';
import { RegisterForm } from './RegisterForm';
import { formatTime, shortId } from '../format';

const PAGE_SIZE = 20;

export function UsersPage() {
  const { client } = useApp();
  const session = useSession();
  const [pager, setPager] = useState<Pager>(firstPage);
  const [registered, setRegistered] = useState<CommandAnswer | null>(null);
  const cursor = currentCursor(pager);

  const users = useQuery(`users:${cursor ?? ''}`, async (min, signal) => {
    const res = await client.listUsers({ limit: PAGE_SIZE, cursor }, { minPosition: min, signal });
    return res.data;
  });

  useEffect(() => {
    if (users.data) setPager((p) => loaded(p, users.data?.next_cursor));
  }, [users.data]);

  const onRegistered = (a: CommandAnswer) => {
    setRegistered(a);
    // Back to the newest page, read once the projection has the new user.
    setPager(firstPage());
    users.reload(a.position);
  };

  return (
    <div className="page">
      <h1>Users</h1>
      {canCommand(session.role) ? (
        <section className="card">
          <RegisterForm onRegistered={onRegistered} />
          {registered ? (
            <p className="alert alert-success" role="status" data-testid="registered" data-user-id={registered.user_id}>
              Registered user <Link href={`/users/${registered.user_id}`}>{registered.user_id}</Link> (log position #{registered.position}).
            </p>
          ) : null}
        </section>
      ) : null}

      <section className="card" aria-labelledby="user-list-title" aria-busy={users.loading}>
        <div className="card-head">
          <h2 id="user-list-title">All users</h2>
          <button type="button" className="btn btn-secondary" onClick={() => users.reload()} disabled={users.loading}>
            Refresh
          </button>
        </div>
        <ProblemAlert problem={users.problem} onRetry={() => users.reload()} context="Could not load users" />
        {users.data ? (
          users.data.items.length === 0 ? (
            <p className="empty">No users yet.</p>
          ) : (
            <div className="table-scroll">
              <table className="table" data-testid="users-table">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">E-mail</th>
                    <th scope="col">Status</th>
                    <th scope="col">Registered</th>
                    <th scope="col">Id</th>
                  </tr>
                </thead>
                <tbody>
                  {users.data.items.map((u) => (
                    <tr key={u.user_id} data-user-id={u.user_id}>
                      <td>
                        <Link href={`/users/${u.user_id}`}>{u.erased ? <em>erased</em> : u.display_name ?? '—'}</Link>
                      </td>
                      <td>{u.erased ? <em>erased</em> : u.email ?? '—'}</td>
                      <td>
                        <span className={`status status-${u.status}`}>{u.status}</span>
                      </td>
                      <td>{formatTime(u.created_at)}</td>
                      <td>
                        <code title={u.user_id}>{shortId(u.user_id)}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        ) : users.loading ? (
          <p className="loading">Loading…</p>
        ) : null}
        <PagerNav
          label="Users"
          pager={pager}
          loading={users.loading}
          onBack={() => setPager(back)}
          onForward={() => setPager(forward)}
        />
      </section>
    </div>
  );
}

/** A `user` has no list; its page is its own profile. */
export function goToOwnProfile(sub: string) {
  navigate(`/users/${sub}`, true);
}
