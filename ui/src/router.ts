// A few routes over the History API; the gateway answers every non-API path with
// index.html, so deep links and reloads work.
import { useEffect, useState } from 'react';

export type Route =
  | { page: 'home' }
  | { page: 'signin' }
  | { page: 'callback' }
  | { page: 'users' }
  | { page: 'user'; id: string }
  | { page: 'money'; userId?: string }
  | { page: 'audit' }
  | { page: 'operations' }
  | { page: 'not_found'; path: string };

export function parseRoute(pathname: string, search = ''): Route {
  const path = pathname.replace(/\/+$/, '') || '/';
  if (path === '/') return { page: 'home' };
  if (path === '/signin') return { page: 'signin' };
  // Where the identity provider sends the browser back (OpenID Connect redirect_uri).
  if (path === '/signin/callback') return { page: 'callback' };
  if (path === '/users') return { page: 'users' };
  const user = /^\/users\/([^/]+)$/.exec(path);
  if (user) return { page: 'user', id: decodeURIComponent(user[1]) };
  if (path === '/money') {
    const u = new URLSearchParams(search).get('user');
    return u ? { page: 'money', userId: u } : { page: 'money' };
  }
  if (path === '/audit') return { page: 'audit' };
  if (path === '/operations') return { page: 'operations' };
  return { page: 'not_found', path };
}

export function routePath(r: Route): string {
  switch (r.page) {
    case 'home': return '/';
    case 'signin': return '/signin';
    case 'callback': return '/signin/callback';
    case 'users': return '/users';
    case 'user': return `/users/${encodeURIComponent(r.id)}`;
    case 'money': return r.userId ? `/money?user=${encodeURIComponent(r.userId)}` : '/money';
    case 'audit': return '/audit';
    case 'operations': return '/operations';
    case 'not_found': return r.path;
  }
}

const EVENT = 'app:navigate';

export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  window.dispatchEvent(new Event(EVENT));
}

export function useRoute(): Route {
  const read = () => parseRoute(location.pathname, location.search);
  const [route, setRoute] = useState<Route>(read);
  useEffect(() => {
    const on = () => setRoute(read());
    window.addEventListener('popstate', on);
    window.addEventListener(EVENT, on);
    return () => {
      window.removeEventListener('popstate', on);
      window.removeEventListener(EVENT, on);
    };
  }, []);
  return route;
}
