import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { ApiClient } from './api';
import { LagIndicator } from './components/LagIndicator';
import { Link } from './components/Link';
import { AppContext, type AppContextValue } from './context';
import { AuditPage } from './pages/Audit';
import { MoneyPage } from './pages/Money';
import { OidcCallbackPage } from './pages/OidcCallback';
import { OperationsPage } from './pages/Operations';
import { SignInPage } from './pages/SignIn';
import { UserPage } from './pages/UserDetail';
import { UsersPage } from './pages/Users';
import { endSessionUrl } from './oidc';
import { navigate, useRoute, type Route } from './router';
import { loadRuntimeConfig, type RuntimeConfig } from './runtimeConfig';
import { canAudit, canCommand, canListUsers, loadSession, millisUntilExpiry, saveSession, type Session } from './session';

export function App() {
  const [session, setSession] = useState<Session | null>(() => loadSession());
  const [flash, setFlash] = useState<string | null>(null);
  const sessionRef = useRef(session);
  sessionRef.current = session;

  const signOut = useCallback((reason?: string) => {
    const idp = sessionRef.current?.idp;
    saveSession(null);
    setSession(null);
    setFlash(reason ?? null);
    // Signing out on purpose also ends the identity provider's session, so the next
    // sign-in asks for the password again; the provider sends the browser back here.
    if (reason === undefined && idp) {
      window.location.assign(endSessionUrl(idp.endSession, idp, `${window.location.origin}/signin`));
      return;
    }
    navigate('/signin');
  }, []);

  const client = useMemo(
    () =>
      new ApiClient({
        getToken: () => sessionRef.current?.token ?? null,
        onUnauthenticated: () => signOut('Your session has expired or the token was refused. Please sign in again.'),
      }),
    [signOut],
  );

  const signIn = useCallback((s: Session) => {
    saveSession(s);
    setSession(s);
    setFlash(null);
    navigate(s.role === 'user' ? `/users/${s.sub}` : s.role === 'auditor' ? '/audit' : '/users');
  }, []);

  const [runtime, setRuntime] = useState<RuntimeConfig | null>(null);
  useEffect(() => {
    let live = true;
    void loadRuntimeConfig().then((c) => {
      if (live) setRuntime(c);
    });
    return () => {
      live = false;
    };
  }, []);

  // An expired token is refused by the APIs anyway; sign out when it expires rather than
  // on the next failed request.
  useEffect(() => {
    const ms = session ? millisUntilExpiry(session) : undefined;
    if (ms === undefined) return;
    const timer = setTimeout(() => signOut('Your session has expired. Please sign in again.'), ms);
    return () => clearTimeout(timer);
  }, [session, signOut]);

  const ctx: AppContextValue = useMemo(
    () => ({ client, session, signIn, signOut, oidc: runtime?.oidc ?? null, configReady: runtime !== null }),
    [client, session, signIn, signOut, runtime],
  );
  const route = useRoute();

  // Move focus to the new page's heading so screen readers announce the navigation.
  // Not on the first render: a fresh page load keeps the browser's own focus order, so the
  // first Tab still reaches the skip link.
  const mainRef = useRef<HTMLElement>(null);
  const firstRoute = useRef(true);
  useEffect(() => {
    if (firstRoute.current) {
      firstRoute.current = false;
      return;
    }
    const h1 = mainRef.current?.querySelector('h1');
    if (h1) {
      h1.setAttribute('tabindex', '-1');
      h1.focus({ preventScroll: true });
    }
  }, [route]);

  return (
    <AppContext.Provider value={ctx}>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="brand">
          <Link href="/">Ledger</Link>
        </div>
        {session ? <Nav route={route} session={session} /> : null}
        <div className="topbar-right">
          {session ? <LagIndicator /> : null}
          {session ? (
            <div className="who" data-testid="who" data-role={session.role} data-sub={session.sub}>
              <span className="role-badge">{session.role}</span>
              <code title={session.sub}>{session.sub.slice(0, 8)}</code>
              <button type="button" className="btn btn-link" onClick={() => signOut()} data-testid="signout">
                Sign out
              </button>
            </div>
          ) : null}
        </div>
      </header>
      <main id="main" ref={mainRef}>
        {flash ? (
          <p className="alert alert-warning" role="alert">
            {flash}
          </p>
        ) : null}
        <Page route={route} session={session} />
      </main>
    </AppContext.Provider>
  );
}

function Nav({ route, session }: { route: Route; session: Session }) {
  const items: { href: string; label: string; active: boolean }[] = [];
  if (canListUsers(session.role)) items.push({ href: '/users', label: 'Users', active: route.page === 'users' || (route.page === 'user' && route.id !== session.sub) });
  if (session.role === 'user') items.push({ href: `/users/${session.sub}`, label: 'My account', active: route.page === 'user' && route.id === session.sub });
  if (canCommand(session.role)) items.push({ href: '/money', label: 'Money', active: route.page === 'money' });
  if (canAudit(session.role)) items.push({ href: '/audit', label: 'Audit', active: route.page === 'audit' });
  if (session.role === 'admin') items.push({ href: '/operations', label: 'Operations', active: route.page === 'operations' });
  items.push({ href: '/signin', label: 'Switch role', active: route.page === 'signin' });
  return (
    <nav className="nav" aria-label="Main">
      <ul>
        {items.map((i) => (
          <li key={i.href}>
            <Link href={i.href} aria-current={i.active ? 'page' : undefined} data-testid={`nav-${i.label.toLowerCase().replace(/\s+/g, '-')}`}>
              {i.label}
            </Link>
          </li>
        ))}
      </ul>
    </nav>
  );
}

function Page({ route, session }: { route: Route; session: Session | null }) {
  useEffect(() => {
    if (route.page === 'callback') return;
    if (!session && route.page !== 'signin') navigate('/signin', true);
    else if (session && route.page === 'home') {
      navigate(session.role === 'user' ? `/users/${session.sub}` : session.role === 'auditor' ? '/audit' : '/users', true);
    } else if (session && route.page === 'users' && session.role === 'user') {
      navigate(`/users/${session.sub}`, true);
    }
  }, [route, session]);

  if (route.page === 'callback') return <OidcCallbackPage />;
  if (!session || route.page === 'signin') return <SignInPage />;
  switch (route.page) {
    case 'home':
      return null;
    case 'users':
      return session.role === 'user' ? null : <UsersPage />;
    case 'user':
      return <UserPage key={route.id} id={route.id} />;
    case 'money':
      return canCommand(session.role) ? <MoneyPage key={route.userId ?? ''} initialUserId={route.userId} /> : <Forbidden what="Moving money" />;
    case 'audit':
      return canAudit(session.role) ? <AuditPage /> : <Forbidden what="The audit log" />;
    case 'operations':
      return session.role === 'admin' ? <OperationsPage /> : <Forbidden what="The operations page" />;
    case 'not_found':
      return (
        <div className="page">
          <h1>Page not found</h1>
          <p>
            There is no page at <code>{route.path}</code>. <Link href="/">Go to the start page</Link>.
          </p>
        </div>
      );
  }
}

function Forbidden({ what }: { what: string }) {
  return (
    <div className="page">
      <h1>Not available</h1>
      <p className="alert alert-error" role="alert" data-testid="problem" data-code="forbidden" data-status="403">
        {what} is not available to your role. <span className="badge">403</span> <code>forbidden</code>
      </p>
    </div>
  );
}
