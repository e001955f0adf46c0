import { describe, expect, it } from 'vitest';
import {
  OidcError,
  PENDING_KEY,
  PENDING_TTL_MS,
  base64UrlEncode,
  checkIdToken,
  completeSignIn,
  discover,
  discoveryUrl,
  endSessionUrl,
  isValidVerifier,
  parseDiscovery,
  parseTokenResponse,
  pkceChallenge,
  randomToken,
  startSignIn,
  withOpenid,
  type Discovery,
  type OidcErrorCode,
  type OidcSettings,
  type PendingSignIn,
} from './oidc';

class MemoryStorage {
  private m = new Map<string, string>();
  get length() { return this.m.size; }
  getItem(k: string) { return this.m.get(k) ?? null; }
  setItem(k: string, v: string) { this.m.set(k, v); }
  removeItem(k: string) { this.m.delete(k); }
  clear() { this.m.clear(); }
  key(i: number) { return [...this.m.keys()][i] ?? null; }
}
const storage = () => new MemoryStorage() as unknown as Storage;

const ISSUER = 'https://id.example.com/realms/ledger';
const SETTINGS: OidcSettings = { issuer: ISSUER, clientId: 'ledger-ui', scope: 'openid' };
const REDIRECT = 'https://ledger.example.com/signin/callback';
const DISCOVERY: Discovery = {
  issuer: ISSUER,
  authorization_endpoint: `${ISSUER}/protocol/openid-connect/auth`,
  token_endpoint: `${ISSUER}/protocol/openid-connect/token`,
};
// As Keycloak publishes it (abridged).
const KEYCLOAK_DOC = {
  issuer: ISSUER,
  authorization_endpoint: DISCOVERY.authorization_endpoint,
  token_endpoint: DISCOVERY.token_endpoint,
  end_session_endpoint: `${ISSUER}/protocol/openid-connect/logout`,
  jwks_uri: `${ISSUER}/protocol/openid-connect/certs`,
  response_types_supported: ['code', 'none', 'id_token', 'token', 'id_token token', 'code id_token'],
  grant_types_supported: ['authorization_code', 'implicit', 'refresh_token', 'password', 'client_credentials'],
  code_challenge_methods_supported: ['plain', 'S256'],
};

async function expectOidcError(p: Promise<unknown> | (() => unknown), code: OidcErrorCode) {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(OidcError);
    expect((e as OidcError).code).toBe(code);
    return e as OidcError;
  }
  throw new Error(`expected OidcError ${code}, nothing was thrown`);
}

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (claims: unknown) => `${b64url({ alg: 'RS256', kid: 'k1' })}.${b64url(claims)}.c2lnbmF0dXJl`;
const nowS = () => Math.floor(Date.now() / 1000);

describe('PKCE (RFC 7636)', () => {
  // Appendix B: the octets of the verifier, the verifier, and its S256 challenge.
  const OCTETS = [116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121];
  const VERIFIER = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
  const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

  it('encodes 32 random octets into the appendix B verifier', () => {
    expect(base64UrlEncode(Uint8Array.from(OCTETS))).toBe(VERIFIER);
    expect(randomToken(32, (b) => (b.set(OCTETS), b))).toBe(VERIFIER);
  });

  it('derives the appendix B challenge with S256', async () => {
    expect(await pkceChallenge(VERIFIER)).toBe(CHALLENGE);
  });

  it('makes fresh 43-character verifiers and refuses malformed ones', async () => {
    const a = randomToken();
    expect(a).toHaveLength(43);
    expect(isValidVerifier(a)).toBe(true);
    expect(randomToken()).not.toBe(a);
    expect(isValidVerifier('a'.repeat(42))).toBe(false);
    expect(isValidVerifier('a'.repeat(129))).toBe(false);
    expect(isValidVerifier(`${'a'.repeat(42)}+`)).toBe(false);
    await expect(pkceChallenge('short')).rejects.toThrow(/43–128/);
  });
});

describe('discovery', () => {
  it('reads the endpoints of a Keycloak realm', () => {
    expect(parseDiscovery(KEYCLOAK_DOC, ISSUER)).toEqual({ ...DISCOVERY, end_session_endpoint: KEYCLOAK_DOC.end_session_endpoint });
    expect(discoveryUrl(`${ISSUER}/`)).toBe(`${ISSUER}/.well-known/openid-configuration`);
    expect(discoveryUrl('http://127.0.0.1:9180')).toBe('http://127.0.0.1:9180/.well-known/openid-configuration');
  });

  it('accepts a provider that does not advertise its PKCE methods', () => {
    const { code_challenge_methods_supported: _, ...doc } = KEYCLOAK_DOC;
    expect(parseDiscovery(doc, ISSUER).token_endpoint).toBe(DISCOVERY.token_endpoint);
  });

  it('refuses another issuer, missing endpoints and unsupported flows', async () => {
    await expectOidcError(() => parseDiscovery({ ...KEYCLOAK_DOC, issuer: 'https://evil.example.com' }, ISSUER), 'discovery_invalid');
    await expectOidcError(() => parseDiscovery({ ...KEYCLOAK_DOC, issuer: `${ISSUER}/` }, ISSUER), 'discovery_invalid');
    await expectOidcError(() => parseDiscovery({ ...KEYCLOAK_DOC, token_endpoint: undefined }, ISSUER), 'discovery_invalid');
    await expectOidcError(() => parseDiscovery({ ...KEYCLOAK_DOC, authorization_endpoint: 'javascript:alert(1)' }, ISSUER), 'discovery_invalid');
    await expectOidcError(() => parseDiscovery({ ...KEYCLOAK_DOC, code_challenge_methods_supported: ['plain'] }, ISSUER), 'discovery_invalid');
    await expectOidcError(() => parseDiscovery({ ...KEYCLOAK_DOC, response_types_supported: ['id_token'] }, ISSUER), 'discovery_invalid');
    await expectOidcError(() => parseDiscovery([], ISSUER), 'discovery_invalid');
    await expectOidcError(() => parseDiscovery(null, ISSUER), 'discovery_invalid');
  });

  it('fetches the document and names what went wrong', async () => {
    const seen: string[] = [];
    const ok = (async (url: string) => {
      seen.push(url);
      return new Response(JSON.stringify(KEYCLOAK_DOC), { headers: { 'Content-Type': 'application/json' } });
    }) as unknown as typeof fetch;
    expect((await discover(ISSUER, ok)).issuer).toBe(ISSUER);
    expect(seen).toEqual([`${ISSUER}/.well-known/openid-configuration`]);

    const down = (async () => {
      throw new TypeError('Failed to fetch');
    }) as unknown as typeof fetch;
    await expectOidcError(discover(ISSUER, down), 'discovery_failed');
    const missing = (async () => new Response('nope', { status: 404 })) as unknown as typeof fetch;
    await expectOidcError(discover(ISSUER, missing), 'discovery_failed');
    const html = (async () => new Response('<html>', { status: 200 })) as unknown as typeof fetch;
    await expectOidcError(discover(ISSUER, html), 'discovery_invalid');
  });
});

describe('starting a sign-in', () => {
  it('sends the S256 challenge, state and nonce, and keeps the verifier in the tab', async () => {
    const st = storage();
    const url = new URL(await startSignIn({ ...SETTINGS, scope: 'profile' }, DISCOVERY, REDIRECT, { storage: st, now: () => 1000 }));
    const pending = JSON.parse(st.getItem(PENDING_KEY)!) as PendingSignIn;
    expect(`${url.origin}${url.pathname}`).toBe(DISCOVERY.authorization_endpoint);
    const q = Object.fromEntries(url.searchParams);
    expect(q).toEqual({
      response_type: 'code',
      client_id: 'ledger-ui',
      redirect_uri: REDIRECT,
      scope: 'openid profile',
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: await pkceChallenge(pending.verifier),
      code_challenge_method: 'S256',
    });
    expect(url.toString()).not.toContain(pending.verifier);
    expect(pending).toMatchObject({ issuer: ISSUER, clientId: 'ledger-ui', redirectUri: REDIRECT, createdAt: 1000 });
    expect(new Set([pending.state, pending.nonce, pending.verifier]).size).toBe(3);
  });

  it('always asks for openid', () => {
    expect(withOpenid('openid')).toBe('openid');
    expect(withOpenid(' ledger  email ')).toBe('openid ledger email');
    expect(withOpenid('')).toBe('openid');
  });
});

describe('completing a sign-in', () => {
  const access = jwt({ iss: ISSUER, aud: 'example-ledger', sub: '0190a0b0-0000-7000-8000-000000000001', roles: ['auditor'], exp: nowS() + 300 });

  async function started() {
    const st = storage();
    await startSignIn(SETTINGS, DISCOVERY, REDIRECT, { storage: st });
    const pending = JSON.parse(st.getItem(PENDING_KEY)!) as PendingSignIn;
    const idToken = (over: Record<string, unknown> = {}) =>
      jwt({ iss: ISSUER, aud: 'ledger-ui', sub: 's', nonce: pending.nonce, iat: nowS(), exp: nowS() + 300, ...over });
    const callback = (params: Record<string, string>) => `${REDIRECT}?${new URLSearchParams(params)}`;
    return { st, pending, idToken, callback };
  }

  function tokenEndpoint(answer: { status?: number; body: unknown }) {
    const requests: { url: string; init: RequestInit }[] = [];
    const impl = (async (url: string, init: RequestInit) => {
      requests.push({ url, init });
      return new Response(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body), {
        status: answer.status ?? 200,
        headers: { 'Content-Type': 'application/json' },
      });
    }) as unknown as typeof fetch;
    return { impl, requests };
  }

  it('exchanges the code with the verifier and checks the ID token', async () => {
    const { st, pending, idToken, callback } = await started();
    const { impl, requests } = tokenEndpoint({ body: { access_token: access, id_token: idToken(), token_type: 'Bearer', expires_in: 300 } });
    const tokens = await completeSignIn(callback({ code: 'the-code', state: pending.state, iss: ISSUER }), DISCOVERY, impl, { storage: st });
    expect(tokens.access_token).toBe(access);
    expect(requests).toHaveLength(1);
    expect(requests[0].url).toBe(DISCOVERY.token_endpoint);
    expect(requests[0].init.method).toBe('POST');
    expect(Object.fromEntries(requests[0].init.body as URLSearchParams)).toEqual({
      grant_type: 'authorization_code',
      code: 'the-code',
      redirect_uri: REDIRECT,
      client_id: 'ledger-ui',
      code_verifier: pending.verifier,
    });
    // One use: the pending entry (and with it the verifier) is gone.
    expect(st.getItem(PENDING_KEY)).toBeNull();
    await expectOidcError(completeSignIn(callback({ code: 'the-code', state: pending.state }), DISCOVERY, impl, { storage: st }), 'no_pending_sign_in');
  });

  it('refuses an answer with another state, and asks the provider nothing', async () => {
    const { st, callback } = await started();
    const { impl, requests } = tokenEndpoint({ body: {} });
    await expectOidcError(completeSignIn(callback({ code: 'c', state: 'forged' }), DISCOVERY, impl, { storage: st }), 'state_mismatch');
    await expectOidcError(completeSignIn(callback({ code: 'c' }), DISCOVERY, impl, { storage: st }), 'no_pending_sign_in');
    expect(requests).toHaveLength(0);
    expect(st.getItem(PENDING_KEY)).toBeNull();
  });

  it('refuses an answer without a sign-in in this tab, or after too long', async () => {
    const { impl } = tokenEndpoint({ body: {} });
    await expectOidcError(completeSignIn(`${REDIRECT}?code=c&state=s`, DISCOVERY, impl, { storage: storage() }), 'no_pending_sign_in');
    const { st, pending, callback } = await started();
    const later = Date.now() + PENDING_TTL_MS + 1;
    await expectOidcError(completeSignIn(callback({ code: 'c', state: pending.state }), DISCOVERY, impl, { storage: st, now: () => later }), 'no_pending_sign_in');
    const garbled = storage();
    garbled.setItem(PENDING_KEY, '{not json');
    await expectOidcError(completeSignIn(`${REDIRECT}?code=c&state=s`, DISCOVERY, impl, { storage: garbled }), 'no_pending_sign_in');
  });

  it("reports the provider's refusal and a mixed-up issuer", async () => {
    const a = await started();
    const { impl, requests } = tokenEndpoint({ body: {} });
    const e = await expectOidcError(
      completeSignIn(a.callback({ error: 'access_denied', error_description: 'User cancelled', state: a.pending.state }), DISCOVERY, impl, { storage: a.st }),
      'provider_error',
    );
    expect(e.message).toContain('access_denied');
    const b = await started();
    await expectOidcError(completeSignIn(b.callback({ code: 'c', state: b.pending.state, iss: 'https://evil.example.com' }), DISCOVERY, impl, { storage: b.st }), 'issuer_mismatch');
    const c = await started();
    await expectOidcError(completeSignIn(c.callback({ state: c.pending.state }), DISCOVERY, impl, { storage: c.st }), 'provider_error');
    const d = await started();
    await expectOidcError(completeSignIn(d.callback({ code: 'c', state: d.pending.state }), { ...DISCOVERY, issuer: 'https://other.example.com' }, impl, { storage: d.st }), 'issuer_mismatch');
    expect(requests).toHaveLength(0);
  });

  it('refuses an ID token with another nonce, audience or issuer, or expired', async () => {
    const cases: [Record<string, unknown>, OidcErrorCode][] = [
      [{ nonce: 'someone-elses' }, 'nonce_mismatch'],
      [{ nonce: undefined }, 'nonce_mismatch'],
      [{ aud: 'another-client' }, 'id_token_invalid'],
      [{ aud: ['ledger-ui', 'x'], azp: 'x' }, 'id_token_invalid'],
      [{ iss: 'https://evil.example.com' }, 'id_token_invalid'],
      [{ exp: nowS() - 3600 }, 'id_token_invalid'],
      [{ iat: nowS() + 3600 }, 'id_token_invalid'],
    ];
    for (const [over, code] of cases) {
      const { st, pending, idToken, callback } = await started();
      const { impl } = tokenEndpoint({ body: { access_token: access, id_token: idToken(over), token_type: 'Bearer' } });
      await expectOidcError(completeSignIn(callback({ code: 'c', state: pending.state }), DISCOVERY, impl, { storage: st }), code);
    }
    expect(() => checkIdToken('not-a-jwt', { issuer: ISSUER, clientId: 'ledger-ui', nonce: 'n' }, nowS())).toThrow(OidcError);
  });

  it('reports a refused code and an unusable token answer', async () => {
    const a = await started();
    const refused = tokenEndpoint({ status: 400, body: { error: 'invalid_grant', error_description: 'grant request is invalid' } });
    const e = await expectOidcError(completeSignIn(a.callback({ code: 'c', state: a.pending.state }), DISCOVERY, refused.impl, { storage: a.st }), 'token_request_failed');
    expect(e.message).toContain('invalid_grant');
    const b = await started();
    const opaque = tokenEndpoint({ status: 502, body: '<html>bad gateway</html>' });
    expect((await expectOidcError(completeSignIn(b.callback({ code: 'c', state: b.pending.state }), DISCOVERY, opaque.impl, { storage: b.st }), 'token_request_failed')).message).toContain('HTTP 502');
    const c = await started();
    const down = (async () => {
      throw new TypeError('Failed to fetch');
    }) as unknown as typeof fetch;
    await expectOidcError(completeSignIn(c.callback({ code: 'c', state: c.pending.state }), DISCOVERY, down, { storage: c.st }), 'token_request_failed');

    expect(() => parseTokenResponse({ access_token: access, token_type: 'Bearer' })).toThrow(/id_token/);
    expect(() => parseTokenResponse({ id_token: 'x', token_type: 'Bearer' })).toThrow(/access_token/);
    expect(() => parseTokenResponse({ access_token: 'a', id_token: 'x', token_type: 'DPoP' })).toThrow(/Bearer/);
    expect(parseTokenResponse({ access_token: 'a', id_token: 'x', token_type: 'bearer' }).token_type).toBe('bearer');
  });
});

describe('ending the identity provider session', () => {
  it('sends the browser to end_session_endpoint with the ID token and the way back', () => {
    const url = new URL(
      endSessionUrl(
        `${ISSUER}/protocol/openid-connect/logout`,
        { idToken: 'id.token.sig', clientId: 'ledger-ui' },
        'https://ledger.example.com/signin',
      ),
    );
    expect(url.origin + url.pathname).toBe(`${ISSUER}/protocol/openid-connect/logout`);
    expect(url.searchParams.get('id_token_hint')).toBe('id.token.sig');
    expect(url.searchParams.get('client_id')).toBe('ledger-ui');
    expect(url.searchParams.get('post_logout_redirect_uri')).toBe('https://ledger.example.com/signin');
  });

  it('keeps a query the endpoint already has', () => {
    const url = new URL(endSessionUrl('https://idp.example/logout?tenant=a', { idToken: 'x', clientId: 'c' }, 'https://app/signin'));
    expect(url.searchParams.get('tenant')).toBe('a');
    expect(url.searchParams.get('id_token_hint')).toBe('x');
  });
});
