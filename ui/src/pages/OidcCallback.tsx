import { useEffect, useRef, useState } from 'react';
import { Link } from '../components/Link';
import { useApp } from '../context';
import { OidcError, completeSignIn, discover } from '../oidc';
import { sessionFromToken } from '../session';

/**
 * `/signin/callback`: where the identity provider sends the browser back with a code.
 * Finishes the sign-in once (the code and the pending state are single-use) and goes on
 * like any other sign-in; on failure says why and offers a new start.
 */
export function OidcCallbackPage() {
  const { oidc, configReady, signIn } = useApp();
  const [failure, setFailure] = useState<{ code: string; message: string } | null>(null);
  const started = useRef(false);

  useEffect(() => {
    if (!configReady || started.current) return;
    started.current = true;
    const callbackUrl = location.href;
    // Keep the code out of the history, bookmarks and reloads.
    history.replaceState(null, '', '/signin/callback');
    if (!oidc) {
      setFailure({ code: 'not_configured', message: 'OpenID Connect sign-in is not configured for this site.' });
      return;
    }
    void (async () => {
      try {
        const discovery = await discover(oidc.issuer);
        const tokens = await completeSignIn(callbackUrl, discovery);
        let session;
        try {
          session = sessionFromToken(tokens.access_token);
        } catch (e) {
          const why = e instanceof Error ? e.message : String(e);
          throw new OidcError(
            'token_response_invalid',
            `The access token cannot be used with this ledger (${why}). The provider must issue JWT access tokens with the audience example-ledger and a roles claim.`,
          );
        }
        if (discovery.end_session_endpoint) {
          session.idp = { endSession: discovery.end_session_endpoint, idToken: tokens.id_token, clientId: oidc.clientId };
        }
        signIn(session);
      } catch (e) {
        setFailure({
          code: e instanceof OidcError ? e.code : 'sign_in_failed',
          message: e instanceof Error ? e.message : String(e),
        });
      }
    })();
  }, [configReady, oidc, signIn]);

  return (
    <div className="page narrow">
      <h1>Sign in</h1>
      {failure ? (
        <>
          <div className="alert alert-error" role="alert" data-testid="problem" data-code={failure.code} data-status="0">
            <p className="alert-title">Sign-in did not complete: {failure.message}</p>
            <p className="alert-meta">
              <code>{failure.code}</code>
            </p>
          </div>
          <p>
            <Link href="/signin">Back to sign-in</Link>
          </p>
        </>
      ) : (
        <p className="notice" aria-live="polite" data-testid="oidc-completing">
          Completing the sign-in…
        </p>
      )}
    </div>
  );
}
