import { useId, useState, type FormEvent } from 'react';
import { ROLES, problemOf, type Problem, type Role } from '../api';
import { TextField } from '../components/Field';
import { ProblemAlert } from '../components/ProblemAlert';
import { useApp } from '../context';
import { OidcError, discover, startSignIn } from '../oidc';
import { sessionFromToken } from '../session';

const ROLE_TEXT: Record<Role, string> = {
  admin: 'Everything: users, money, audit.',
  user: 'One customer: own profile, own money.',
  service: 'Every command and view, no audit.',
  auditor: 'Read-only: every view and the audit log.',
};

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Where the identity provider sends the browser back; registered as the client's redirect URI. */
const callbackUrl = () => `${location.origin}/signin/callback`;

/**
 * OpenID Connect sign-in when the gateway's /config.json names a provider; then dev
 * sign-in: pick a role (and for `user` a user id, or a new one) and get a token from
 * the dev stack's `GET /dev/token`, or paste a token (e.g. from `cargo xtask token`).
 */
export function SignInPage() {
  const { client, signIn, session, oidc } = useApp();
  const [oidcPending, setOidcPending] = useState(false);
  const [oidcFailure, setOidcFailure] = useState<{ code: string; message: string } | null>(null);
  const [role, setRole] = useState<Role>('admin');
  const [userMode, setUserMode] = useState<'new' | 'existing'>('new');
  const [userId, setUserId] = useState('');
  const [userIdError, setUserIdError] = useState<string | undefined>();
  const [pending, setPending] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [pasted, setPasted] = useState('');
  const [pasteError, setPasteError] = useState<string | undefined>();
  const legendId = useId();

  const submitDev = async (e: FormEvent) => {
    e.preventDefault();
    setProblem(null);
    let sub: string | undefined;
    if (role === 'user') {
      if (userMode === 'existing') {
        if (!UUID_RE.test(userId.trim())) {
          setUserIdError('Enter the user id (a UUID) of an existing user.');
          return;
        }
        sub = userId.trim().toLowerCase();
      } else {
        // A new customer: we pick the id, so the token's sub and the later registration agree.
        sub = client.newIdempotencyKey();
      }
    }
    setUserIdError(undefined);
    setPending(true);
    try {
      const token = await client.devToken(role, sub);
      signIn(sessionFromToken(token, role));
    } catch (err) {
      const p = problemOf(err);
      if (p.status === 404) {
        p.detail = 'This server has no dev token endpoint (GET /dev/token). Paste a token below instead.';
      }
      setProblem(p);
    } finally {
      setPending(false);
    }
  };

  const startOidc = async () => {
    if (!oidc) return;
    setOidcFailure(null);
    setOidcPending(true);
    try {
      const discovery = await discover(oidc.issuer);
      location.assign(await startSignIn(oidc, discovery, callbackUrl()));
    } catch (err) {
      setOidcFailure({
        code: err instanceof OidcError ? err.code : 'sign_in_failed',
        message: err instanceof Error ? err.message : String(err),
      });
      setOidcPending(false);
    }
  };

  const submitPaste = (e: FormEvent) => {
    e.preventDefault();
    try {
      signIn(sessionFromToken(pasted));
      setPasteError(undefined);
    } catch (err) {
      setPasteError(err instanceof Error ? err.message : String(err));
    }
  };

  return (
    <div className="page narrow">
      <h1>Sign in</h1>
      {session ? (
        <p className="notice">
          Signed in as <strong>{session.role}</strong> ({session.sub}). Signing in again replaces that session.
        </p>
      ) : null}

      {oidc ? (
        <section className="card" aria-labelledby="oidc-signin-title">
          <h2 id="oidc-signin-title">Sign in with your account</h2>
          <p className="hint">
            Through the identity provider at <code>{oidc.issuer}</code>; you come back here afterwards.
          </p>
          {oidcFailure ? (
            <div className="alert alert-error" role="alert" data-testid="problem" data-code={oidcFailure.code} data-status="0">
              <p className="alert-title">Could not start the sign-in: {oidcFailure.message}</p>
            </div>
          ) : null}
          <button type="button" className="btn btn-primary" onClick={() => void startOidc()} disabled={oidcPending} aria-busy={oidcPending} data-testid="oidc-signin">
            {oidcPending ? 'Going to the identity provider…' : 'Sign in with OpenID Connect'}
          </button>
        </section>
      ) : null}

      <section className="card" aria-labelledby="dev-signin-title">
        <h2 id="dev-signin-title">Development sign-in</h2>
        <form onSubmit={submitDev} noValidate>
          <fieldset className="roles" aria-describedby={legendId}>
            <legend>Role</legend>
            <p className="hint" id={legendId}>
              The dev stack issues a token for the role you choose.
            </p>
            {ROLES.map((r) => (
              <label key={r} className="radio">
                <input type="radio" name="role" value={r} checked={role === r} onChange={() => setRole(r)} data-testid={`role-${r}`} />
                <span>
                  <strong>{r}</strong> <span className="hint-inline">{ROLE_TEXT[r]}</span>
                </span>
              </label>
            ))}
          </fieldset>

          {role === 'user' ? (
            <fieldset>
              <legend>Which user</legend>
              <label className="radio">
                <input type="radio" name="user-mode" value="new" checked={userMode === 'new'} onChange={() => setUserMode('new')} data-testid="user-mode-new" />
                <span>A new user (a fresh id; register yourself after signing in)</span>
              </label>
              <label className="radio">
                <input type="radio" name="user-mode" value="existing" checked={userMode === 'existing'} onChange={() => setUserMode('existing')} data-testid="user-mode-existing" />
                <span>An existing user id</span>
              </label>
              {userMode === 'existing' ? (
                <TextField
                  id="signin-user-id"
                  label="User id"
                  value={userId}
                  onChange={(e) => setUserId(e.target.value)}
                  placeholder="00000000-0000-0000-0000-000000000000"
                  autoComplete="off"
                  spellCheck={false}
                  error={userIdError}
                />
              ) : null}
            </fieldset>
          ) : null}

          <ProblemAlert problem={problem} context="Could not get a dev token" />
          <button type="submit" className="btn btn-primary" disabled={pending} aria-busy={pending} data-testid="signin-submit">
            {pending ? 'Signing in…' : `Sign in as ${role}`}
          </button>
        </form>
      </section>

      <section className="card" aria-labelledby="paste-title">
        <h2 id="paste-title">Paste a token</h2>
        <form onSubmit={submitPaste} noValidate>
          <div className={`field${pasteError ? ' has-error' : ''}`}>
            <label htmlFor="pasted-token">Bearer token (JWT)</label>
            <textarea
              id="pasted-token"
              rows={4}
              value={pasted}
              onChange={(e) => setPasted(e.target.value)}
              spellCheck={false}
              aria-invalid={pasteError ? true : undefined}
              aria-describedby={`pasted-token-hint${pasteError ? ' pasted-token-error' : ''}`}
            />
            <p className="hint" id="pasted-token-hint">
              For example the output of <code>cargo xtask token --role admin</code>. It is kept in this tab only.
            </p>
            {pasteError ? (
              <p className="field-error" id="pasted-token-error">
                {pasteError}
              </p>
            ) : null}
          </div>
          <button type="submit" className="btn btn-secondary" disabled={pasted.trim() === ''}>
            Use this token
          </button>
        </form>
      </section>
    </div>
  );
}
