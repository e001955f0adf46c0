import { createContext, useContext } from 'react';
import type { ApiClient } from './api';
import type { OidcSettings } from './oidc';
import type { Session } from './session';

export interface AppContextValue {
  client: ApiClient;
  session: Session | null;
  signIn: (s: Session) => void;
  signOut: (reason?: string) => void;
  /** OpenID Connect sign-in, when the gateway's /config.json configures it. */
  oidc: OidcSettings | null;
  /** False until /config.json has been read (or found missing). */
  configReady: boolean;
}

export const AppContext = createContext<AppContextValue | null>(null);

export function useApp(): AppContextValue {
  const v = useContext(AppContext);
  if (!v) throw new Error('useApp outside <AppContext.Provider>');
  return v;
}

/** For pages that are only rendered when signed in. */
export function useSession(): Session {
  const { session } = useApp();
  if (!session) throw new Error('useSession without a session');
  return session;
}
