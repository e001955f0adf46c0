// OpenID Connect sign-in: the authorization code flow with PKCE (RFC 7636, S256), written
// on WebCrypto, for a public client (no secret) in the browser.
//
//   1. discover(issuer)        GET <issuer>/.well-known/openid-configuration
//   2. startSignIn(...)        state, nonce and code verifier into sessionStorage; the
//                              browser goes to the authorization endpoint with the
//                              verifier's S256 challenge (never the verifier itself)
//   3. completeSignIn(...)     back on /signin/callback: state (and RFC 9207 `iss`)
//                              checked, the pending entry removed (one use), the code and
//                              the verifier sent to the token endpoint, the ID token's
//                              `nonce`, `iss`, `aud` and `exp` checked
//
// The verifier lives only in this tab's sessionStorage and goes only to the token endpoint.
// The ID token's signature is not checked here: it comes straight from the token endpoint
// in answer to our own request (OpenID Connect Core 3.1.3.7, item 6); the access token is
// what the APIs accept, and they verify it against the provider's keys.

export interface OidcSettings {
  /** Exactly as the provider names itself (`iss`), e.g. `https://kc.example.com/realms/ledger`. */
  issuer: string;
  clientId: string;
  /** Space-separated; always contains `openid`. */
  scope: string;
}

/** The parts of the provider's metadata this client uses. */
export interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  end_session_endpoint?: string;
}

export interface TokenSet {
  access_token: string;
  id_token: string;
  token_type: string;
  expires_in?: number;
}

/** What a sign-in in progress keeps between leaving for the provider and coming back. */
export interface PendingSignIn {
  state: string;
  nonce: string;
  verifier: string;
  issuer: string;
  clientId: string;
  redirectUri: string;
  /** Milliseconds since epoch. */
  createdAt: number;
}

export type OidcErrorCode =
  | 'discovery_failed'
  | 'discovery_invalid'
  | 'no_pending_sign_in'
  | 'state_mismatch'
  | 'issuer_mismatch'
  | 'provider_error'
  | 'token_request_failed'
  | 'token_response_invalid'
  | 'id_token_invalid'
  | 'nonce_mismatch';

export class OidcError extends Error {
  constructor(
    readonly code: OidcErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'OidcError';
  }
}

export const PENDING_KEY = 'ledger.oidc.pending';
/** A sign-in not completed within this time is abandoned. */
export const PENDING_TTL_MS = 10 * 60 * 1000;
/** Clock skew allowed on the ID token's `exp` and `iat`. */
const LEEWAY_S = 60;

// ---------------------------------------------------------------- PKCE and random values

export function base64UrlEncode(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

type Random = (bytes: Uint8Array) => Uint8Array;
const systemRandom: Random = (bytes) => crypto.getRandomValues(bytes);

/** `n` random bytes as base64url: 32 bytes make a 43-character PKCE verifier. */
export function randomToken(n = 32, random: Random = systemRandom): string {
  return base64UrlEncode(random(new Uint8Array(n)));
}

/** RFC 7636 §4.1: 43–128 characters of the unreserved set. */
export function isValidVerifier(v: string): boolean {
  return /^[A-Za-z0-9\-._~]{43,128}$/.test(v);
}

/** RFC 7636 §4.2, S256: BASE64URL(SHA-256(ASCII(verifier))). */
export async function pkceChallenge(verifier: string, subtle: SubtleCrypto = crypto.subtle): Promise<string> {
  if (!isValidVerifier(verifier)) throw new Error('A PKCE code verifier is 43–128 unreserved characters.');
  const digest = await subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64UrlEncode(new Uint8Array(digest));
}

// ---------------------------------------------------------------- discovery

/** OpenID Connect Discovery §4: a trailing slash of the issuer is dropped before the suffix. */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}

function isHttpUrl(v: unknown): v is string {
  if (typeof v !== 'string') return false;
  try {
    const u = new URL(v);
    return u.protocol === 'https:' || u.protocol === 'http:';
  } catch {
    return false;
  }
}

/** Checks the provider metadata we rely on; `issuer` must be exactly the one configured. */
export function parseDiscovery(doc: unknown, expectedIssuer: string): Discovery {
  const bad = (why: string) => new OidcError('discovery_invalid', `The provider's configuration is unusable: ${why}.`);
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('it is not a JSON object');
  const d = doc as Record<string, unknown>;
  if (d.issuer !== expectedIssuer) {
    throw bad(`it names the issuer ${JSON.stringify(d.issuer)}, not ${JSON.stringify(expectedIssuer)}`);
  }
  for (const field of ['authorization_endpoint', 'token_endpoint'] as const) {
    if (!isHttpUrl(d[field])) throw bad(`${field} is missing or not an http(s) URL`);
  }
  const listed = (field: string, value: string) => {
    const list = d[field];
    return list === undefined || (Array.isArray(list) && list.includes(value));
  };
  // Absent lists mean "not advertised", which many providers do for PKCE; present ones must fit.
  if (!listed('response_types_supported', 'code')) throw bad('it does not support the code response type');
  if (!listed('code_challenge_methods_supported', 'S256')) throw bad('it does not support PKCE with S256');
  if (!listed('grant_types_supported', 'authorization_code')) throw bad('it does not support the authorization_code grant');
  return {
    issuer: d.issuer,
    authorization_endpoint: d.authorization_endpoint as string,
    token_endpoint: d.token_endpoint as string,
    end_session_endpoint: isHttpUrl(d.end_session_endpoint) ? d.end_session_endpoint : undefined,
  };
}

export async function discover(issuer: string, fetchImpl: typeof fetch = fetch): Promise<Discovery> {
  let res: Response;
  try {
    res = await fetchImpl(discoveryUrl(issuer), { headers: { Accept: 'application/json' } });
  } catch {
    throw new OidcError('discovery_failed', `The identity provider at ${issuer} could not be reached.`);
  }
  if (!res.ok) throw new OidcError('discovery_failed', `The identity provider answered HTTP ${res.status} for its configuration.`);
  let doc: unknown;
  try {
    doc = await res.json();
  } catch {
    throw new OidcError('discovery_invalid', "The provider's configuration is not JSON.");
  }
  return parseDiscovery(doc, issuer);
}

// ---------------------------------------------------------------- step 2: away to the provider

export interface Deps {
  storage?: Storage;
  random?: Random;
  subtle?: SubtleCrypto;
  now?: () => number;
}

/** Remembers a new pending sign-in and returns the authorization URL to send the browser to. */
export async function startSignIn(settings: OidcSettings, discovery: Discovery, redirectUri: string, deps: Deps = {}): Promise<string> {
  const storage = deps.storage ?? sessionStorage;
  const now = deps.now ?? Date.now;
  const pending: PendingSignIn = {
    state: randomToken(32, deps.random),
    nonce: randomToken(32, deps.random),
    verifier: randomToken(32, deps.random),
    issuer: discovery.issuer,
    clientId: settings.clientId,
    redirectUri,
    createdAt: now(),
  };
  const challenge = await pkceChallenge(pending.verifier, deps.subtle);
  storage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(discovery.authorization_endpoint);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', settings.clientId);
  url.searchParams.set('redirect_uri', redirectUri);
  url.searchParams.set('scope', withOpenid(settings.scope));
  url.searchParams.set('state', pending.state);
  url.searchParams.set('nonce', pending.nonce);
  url.searchParams.set('code_challenge', challenge);
  url.searchParams.set('code_challenge_method', 'S256');
  return url.toString();
}

export function withOpenid(scope: string): string {
  const scopes = scope.split(/\s+/).filter(Boolean);
  return (scopes.includes('openid') ? scopes : ['openid', ...scopes]).join(' ');
}

/** Reads and removes the pending sign-in: each one is used once, whatever happens next. */
export function takePending(storage: Storage, now: number): PendingSignIn {
  const raw = storage.getItem(PENDING_KEY);
  storage.removeItem(PENDING_KEY);
  const none = () => new OidcError('no_pending_sign_in', 'No sign-in was started in this tab (or it was already used). Start again.');
  if (!raw) throw none();
  let p: PendingSignIn;
  try {
    p = JSON.parse(raw) as PendingSignIn;
  } catch {
    throw none();
  }
  if (typeof p.state !== 'string' || typeof p.nonce !== 'string' || typeof p.verifier !== 'string' || typeof p.createdAt !== 'number') throw none();
  if (now - p.createdAt > PENDING_TTL_MS) {
    throw new OidcError('no_pending_sign_in', 'The sign-in took too long and was abandoned. Start again.');
  }
  return p;
}

// ---------------------------------------------------------------- step 3: back with a code

/** The authorization response in the callback URL, checked against the pending sign-in. */
export function checkCallback(callbackUrl: string, pending: PendingSignIn): string {
  const params = new URL(callbackUrl).searchParams;
  // State first: an error response with a foreign state is not ours to show either.
  if (params.get('state') !== pending.state) {
    throw new OidcError('state_mismatch', 'The answer from the identity provider does not belong to the sign-in started here.');
  }
  const iss = params.get('iss');
  if (iss !== null && iss !== pending.issuer) {
    throw new OidcError('issuer_mismatch', `The answer names the issuer ${iss}, not ${pending.issuer}.`);
  }
  const error = params.get('error');
  if (error) {
    const description = params.get('error_description');
    throw new OidcError('provider_error', `The identity provider refused the sign-in: ${error}${description ? ` (${description})` : ''}.`);
  }
  const code = params.get('code');
  if (!code) throw new OidcError('provider_error', 'The identity provider answered without an authorization code.');
  return code;
}

export function parseTokenResponse(doc: unknown): TokenSet {
  const bad = (why: string) => new OidcError('token_response_invalid', `The token endpoint's answer is unusable: ${why}.`);
  if (typeof doc !== 'object' || doc === null) throw bad('not a JSON object');
  const d = doc as Record<string, unknown>;
  if (typeof d.access_token !== 'string' || d.access_token === '') throw bad('no access_token');
  if (typeof d.id_token !== 'string' || d.id_token === '') throw bad('no id_token');
  if (typeof d.token_type !== 'string' || d.token_type.toLowerCase() !== 'bearer') throw bad('token_type is not Bearer');
  return {
    access_token: d.access_token,
    id_token: d.id_token,
    token_type: d.token_type,
    expires_in: typeof d.expires_in === 'number' ? d.expires_in : undefined,
  };
}

function jwtPayload(token: string): Record<string, unknown> {
  const parts = token.split('.');
  if (parts.length !== 3) throw new OidcError('id_token_invalid', 'The ID token is not a signed JWT.');
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, '='));
    const payload: unknown = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
    if (typeof payload === 'object' && payload !== null && !Array.isArray(payload)) return payload as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new OidcError('id_token_invalid', 'The ID token payload could not be read.');
}

/** OpenID Connect Core 3.1.3.7: `iss`, `aud` (and `azp`), `exp`, `iat` and our `nonce`. */
export function checkIdToken(idToken: string, expected: { issuer: string; clientId: string; nonce: string }, nowSeconds: number): Record<string, unknown> {
  const c = jwtPayload(idToken);
  const bad = (why: string) => new OidcError('id_token_invalid', `The ID token is not for this sign-in: ${why}.`);
  if (c.iss !== expected.issuer) throw bad(`issuer ${JSON.stringify(c.iss)}`);
  const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
  if (!aud.includes(expected.clientId)) throw bad('another audience');
  if (aud.length > 1 && c.azp !== undefined && c.azp !== expected.clientId) throw bad('another authorised party');
  if (typeof c.exp !== 'number' || c.exp + LEEWAY_S <= nowSeconds) throw bad('expired');
  if (typeof c.iat === 'number' && c.iat - LEEWAY_S > nowSeconds) throw bad('issued in the future');
  if (c.nonce !== expected.nonce) throw new OidcError('nonce_mismatch', 'The ID token does not carry the nonce of this sign-in (a replayed answer?).');
  return c;
}

/** Finishes the sign-in that brought the browser to `callbackUrl` and returns the tokens. */
export async function completeSignIn(callbackUrl: string, discovery: Discovery, fetchImpl: typeof fetch = fetch, deps: Deps = {}): Promise<TokenSet> {
  const storage = deps.storage ?? sessionStorage;
  const now = deps.now ?? Date.now;
  const pending = takePending(storage, now());
  if (pending.issuer !== discovery.issuer) {
    throw new OidcError('issuer_mismatch', `The sign-in was started with ${pending.issuer}, not ${discovery.issuer}.`);
  }
  const code = checkCallback(callbackUrl, pending);
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    code,
    redirect_uri: pending.redirectUri,
    client_id: pending.clientId,
    code_verifier: pending.verifier,
  });
  let res: Response;
  try {
    res = await fetchImpl(discovery.token_endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body,
    });
  } catch {
    throw new OidcError('token_request_failed', 'The token endpoint could not be reached.');
  }
  let doc: unknown = null;
  try {
    doc = await res.json();
  } catch {
    // handled below
  }
  if (!res.ok) {
    const d = (doc ?? {}) as Record<string, unknown>;
    const what = typeof d.error === 'string' ? `${d.error}${typeof d.error_description === 'string' ? ` (${d.error_description})` : ''}` : `HTTP ${res.status}`;
    throw new OidcError('token_request_failed', `The identity provider did not issue tokens: ${what}.`);
  }
  const tokens = parseTokenResponse(doc);
  checkIdToken(tokens.id_token, { issuer: pending.issuer, clientId: pending.clientId, nonce: pending.nonce }, now() / 1000);
  return tokens;
}

/**
 * RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): where to send the browser
 * so that signing out of the UI also ends the identity provider's session, and the
 * provider sends it back to `postLogoutRedirectUri` (which the client registers exactly).
 */
export function endSessionUrl(endpoint: string, who: { idToken: string; clientId: string }, postLogoutRedirectUri: string): string {
  const url = new URL(endpoint);
  url.searchParams.set('id_token_hint', who.idToken);
  url.searchParams.set('client_id', who.clientId);
  url.searchParams.set('post_logout_redirect_uri', postLogoutRedirectUri);
  return url.toString();
}
