#!/usr/bin/env node
// A real OpenID Connect provider for the end-to-end test of the UI's sign-in, standing in
// for the Keycloak realm of compose: node-oidc-provider (a certified implementation) with
//
//   - the public client `ledger-ui` (no secret; authorization code + PKCE S256 only),
//     redirect URI(s) from OIDC_REDIRECT_URIS;
//   - one account (e2e/oidc-account.mjs) signed in through a username/password form;
//   - RS256 keys made at startup (JWKS at <issuer>/jwks);
//   - access tokens as JWTs for the resource `urn:example:ledger` (the default resource,
//     so the client needs no `resource` parameter) with `aud` = example-ledger and the
//     account's roles in a top-level `roles` claim, as the realm's mappers do.
//
//   OIDC_PROVIDER_ADDR=127.0.0.1:9180 \
//   OIDC_REDIRECT_URIS=http://127.0.0.1:8080/signin/callback node e2e/oidc-provider.mjs
//
// Prints `listening on <issuer>` once it accepts connections; SIGTERM/SIGINT stop it.

import { generateKeyPairSync, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import Provider, { errors } from 'oidc-provider';
import { ACCOUNT, AUDIENCE, CLIENT_ID } from './oidc-account.mjs';

const ADDR = process.env.OIDC_PROVIDER_ADDR ?? '127.0.0.1:9180';
const ISSUER = (process.env.OIDC_ISSUER ?? `http://${ADDR}`).replace(/\/+$/, '');
const REDIRECT_URIS = (process.env.OIDC_REDIRECT_URIS ?? 'http://127.0.0.1:8080/signin/callback').split(',').map((u) => u.trim()).filter(Boolean);
const RESOURCE = 'urn:example:ledger';
const TOKEN_TTL_S = Number(process.env.OIDC_TOKEN_TTL_S ?? 600);

const log = (...a) => console.log('[oidc-provider]', ...a);

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `e2e-${randomUUID()}`, use: 'sig', alg: 'RS256' };
}

const provider = new Provider(ISSUER, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_name: 'Ledger',
      application_type: 'web',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: REDIRECT_URIS,
    },
  ],
  jwks: { keys: [signingKey()] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'profile', 'email'],
  claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
  pkce: { required: () => true },
  ttl: { AccessToken: TOKEN_TTL_S, IdToken: TOKEN_TTL_S, AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600 },
  async findAccount(_ctx, sub) {
    if (sub !== ACCOUNT.sub) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, name: ACCOUNT.name, email: ACCOUNT.email };
      },
    };
  },
  // The browser calls discovery and the token endpoint from the UI's origin.
  clientBasedCORS(_ctx, origin, client) {
    return client.redirectUris.some((uri) => new URL(uri).origin === origin);
  },
  extraTokenClaims(_ctx, token) {
    if (token.kind === 'AccessToken' && token.accountId === ACCOUNT.sub) return { roles: ACCOUNT.roles };
    return undefined;
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      // The code's resource carries over to the token request, which names none.
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, indicator) {
        if (indicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          audience: AUDIENCE,
          scope: 'openid profile email',
          accessTokenTTL: TOKEN_TTL_S,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
});
provider.on('server_error', (_ctx, e) => log('server error:', e));

// ---------------------------------------------------------------- the interactions

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function loginPage(res, uid, problem) {
  res.statusCode = problem ? 401 : 200;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · test identity provider</title></head>
<body>
<main>
<h1>Sign in to the test identity provider</h1>
${problem ? `<p role="alert">${escapeHtml(problem)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
  <p><label for="username">Username</label> <input id="username" name="username" required></p>
  <p><label for="password">Password</label> <input id="password" name="password" type="password" required></p>
  <p><button type="submit">Sign in</button></p>
</form>
</main>
</body></html>`);
}

const same = (a, b) => {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
};

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 16 * 1024) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

async function showInteraction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') return loginPage(res, details.uid);
  if (details.prompt.name === 'consent') {
    // `ledger-ui` is the realm's own first-party client: consent is implied, as in Keycloak
    // with "Consent required" off.
    const { prompt, params, session, grantId } = details;
    const grant = grantId ? await provider.Grant.find(grantId) : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    const id = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId: id } }, { mergeWithLastSubmission: true });
  }
  res.statusCode = 501;
  res.end(`prompt ${details.prompt.name} is not implemented`);
}

async function login(req, res) {
  const details = await provider.interactionDetails(req, res);
  const form = await readForm(req);
  if (!same(form.get('username'), ACCOUNT.username) || !same(form.get('password'), ACCOUNT.password)) {
    log('refused a sign-in with wrong credentials');
    return loginPage(res, details.uid, 'Wrong username or password.');
  }
  log(`signed in ${ACCOUNT.username} (${ACCOUNT.sub})`);
  return provider.interactionFinished(req, res, { login: { accountId: ACCOUNT.sub } }, { mergeWithLastSubmission: false });
}

// ---------------------------------------------------------------- the server

const handle = provider.callback();
const server = createServer((req, res) => {
  const { pathname } = new URL(req.url ?? '/', ISSUER);
  const m = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec(pathname);
  if (!m) return handle(req, res);
  const route = m[2] ? (req.method === 'POST' ? login : null) : req.method === 'GET' ? showInteraction : null;
  if (!route) {
    res.statusCode = 405;
    return res.end();
  }
  route(req, res).catch((e) => {
    log('interaction failed:', e?.message ?? e);
    if (!res.headersSent) {
      res.statusCode = e instanceof errors.SessionNotFound ? 400 : 500;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    }
    res.end(`The sign-in could not go on: ${e?.message ?? e}`);
  });
});

const [host, port] = [ADDR.slice(0, ADDR.lastIndexOf(':')), Number(ADDR.slice(ADDR.lastIndexOf(':') + 1))];
server.listen(port, host, () => log(`listening on ${ISSUER} (client ${CLIENT_ID}, redirect ${REDIRECT_URIS.join(', ')})`));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
