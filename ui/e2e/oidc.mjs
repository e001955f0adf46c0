#!/usr/bin/env node
// End-to-end test of OpenID Connect sign-in, in a real (headless) Chromium: the UI behind
// the gateway, a real OpenID provider (e2e/oidc-provider.mjs), and query-api verifying the
// provider's tokens through JWKS_URL.
//
//   BASE_URL=http://127.0.0.1:8080 node e2e/oidc.mjs
//
// Needs, behind BASE_URL: the gateway rendered with GATEWAY_OIDC_ISSUER (so /config.json
// names the provider and CSP lets the UI call it), serving ui/dist, and query-api started
// with JWKS_URL=<issuer>/jwks, JWT_ISSUER=<issuer>, JWT_ALGORITHM=RS256. The provider must
// list <BASE_URL>/signin/callback as a redirect URI of `ledger-ui`.
//
// Steps: the sign-in page offers OpenID Connect; an answer with a forged state is refused;
// a wrong password is refused by the provider; the test account signs in on the
// provider's login page and comes back signed in with the roles of its access token; no
// code or verifier is left behind; the audit page verifies the log and a view is read
// through the gateway with the token (and a tampered token is refused). Exit code 0 on
// success, otherwise 1 with the step, the reason and failure-oidc-<step>.png.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openBrowser } from './browser.mjs';
import { ACCOUNT, AUDIENCE } from './oidc-account.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE_URL = (process.env.BASE_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
const SCREENSHOT_DIR = path.resolve(process.cwd(), process.env.SCREENSHOT_DIR ?? path.join(here, '..', '..', 'docs', 'screenshots'));
const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS ?? 15000);

const log = (...a) => console.log('[e2e-oidc]', ...a);

class StepFailure extends Error {}

/** The runtime config must name a provider, and the provider must answer discovery. */
async function preflight() {
  let config;
  try {
    const res = await fetch(`${BASE_URL}/config.json`);
    config = res.ok ? await res.json() : null;
  } catch (e) {
    throw new StepFailure(`nothing answers at ${BASE_URL} (${e.cause?.code ?? e.message}); start the gateway or set BASE_URL`);
  }
  const issuer = config?.oidc?.issuer;
  if (!issuer) throw new StepFailure(`${BASE_URL}/config.json names no OpenID provider: render the gateway with GATEWAY_OIDC_ISSUER`);
  const discovery = await fetch(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`).then(
    (r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))),
    (e) => Promise.reject(e),
  ).catch((e) => {
    throw new StepFailure(`the OpenID provider ${issuer} does not answer discovery (${e.cause?.code ?? e.message}); start e2e/oidc-provider.mjs`);
  });
  return { issuer, discovery };
}

function claimsOf(jwt) {
  const [header, payload] = jwt.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()));
  return { header, payload };
}

async function main() {
  const { issuer } = await preflight();
  log(`provider ${issuer}, UI ${BASE_URL}`);

  const { page, trouble, close } = await openBrowser('ledger-e2e-oidc-', TIMEOUT);

  let current = 'start';
  const step = async (name, fn) => {
    current = name;
    log(`… ${name}`);
    await fn();
    log(`✓ ${name}`);
  };
  const shot = async (name) => {
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const file = path.join(SCREENSHOT_DIR, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    log(`  screenshot ${file}`);
  };
  const onProvider = () => new URL(page.url()).origin === new URL(issuer).origin;

  let token;
  try {
    await step('the sign-in page offers OpenID Connect', async () => {
      await page.goto(`${BASE_URL}/`);
      await page.waitForURL(/\/signin$/);
      await expectVisible(page.locator('[data-testid="oidc-signin"]'), 'the "Sign in with OpenID Connect" button');
      await expectVisible(page.locator('#oidc-signin-title'), 'the OpenID Connect card');
      await shot('oidc-01-sign-in');
    });

    await step('an answer with a forged state is refused', async () => {
      await page.click('[data-testid="oidc-signin"]');
      await page.waitForURL((u) => new URL(u).origin === new URL(issuer).origin);
      // The provider's login page is showing and a sign-in is pending in the tab; an
      // attacker's callback link with another state must not complete it.
      await page.goto(`${BASE_URL}/signin/callback?code=attackers-code&state=forged&iss=${encodeURIComponent(issuer)}`);
      const refused = page.locator('[data-testid="problem"]');
      await expectVisible(refused, 'a refusal of the forged answer');
      const code = await refused.getAttribute('data-code');
      if (code !== 'state_mismatch') throw new StepFailure(`expected code state_mismatch, got ${code}: ${await refused.innerText()}`);
      if (page.url().includes('attackers-code')) throw new StepFailure('the code stayed in the address bar');
      if ((await page.locator('[data-testid="who"]').count()) > 0) throw new StepFailure('the forged answer signed someone in');
    });

    await step('the provider refuses a wrong password', async () => {
      await page.goto(`${BASE_URL}/signin`);
      await page.click('[data-testid="oidc-signin"]');
      await page.waitForURL(() => onProvider());
      await page.getByLabel('Username').fill(ACCOUNT.username);
      await page.getByLabel('Password').fill('not the password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await expectVisible(page.getByRole('alert').filter({ hasText: 'Wrong username or password' }), "the provider's refusal");
      if (!onProvider()) throw new StepFailure(`a wrong password left the provider for ${page.url()}`);
    });

    await step("sign in on the provider's login page and come back signed in", async () => {
      await page.getByLabel('Username').fill(ACCOUNT.username);
      await page.getByLabel('Password').fill(ACCOUNT.password);
      await shot('oidc-02-provider-login');
      await page.getByRole('button', { name: 'Sign in' }).click();
      const who = page.locator(`[data-testid="who"][data-sub="${ACCOUNT.sub}"]`);
      await failOnProblem(page, who, 'coming back from the provider');
      const role = await who.getAttribute('data-role');
      if (role !== ACCOUNT.roles[0]) throw new StepFailure(`signed in as ${role}, the token says ${ACCOUNT.roles.join(',')}`);
      if (new URL(page.url()).origin !== new URL(BASE_URL).origin) throw new StepFailure(`ended up at ${page.url()}`);
    });

    await step('no code or verifier is left behind; the token is the access token the APIs accept', async () => {
      const url = new URL(page.url());
      if (url.searchParams.has('code') || url.searchParams.has('state')) throw new StepFailure(`the address still carries the code: ${page.url()}`);
      const stored = await page.evaluate(() => ({ pending: sessionStorage.getItem('ledger.oidc.pending'), session: sessionStorage.getItem('ledger.session'), local: Object.keys(localStorage) }));
      if (stored.pending !== null) throw new StepFailure('the pending sign-in (with its code verifier) is still in sessionStorage');
      if (stored.local.length) throw new StepFailure(`something went to localStorage: ${stored.local.join(', ')}`);
      token = JSON.parse(stored.session ?? 'null')?.token;
      if (!token) throw new StepFailure('no session token in sessionStorage');
      const { header, payload } = claimsOf(token);
      const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      const problems = [];
      if (header.alg !== 'RS256') problems.push(`alg ${header.alg}`);
      if (payload.iss !== issuer) problems.push(`iss ${payload.iss}`);
      if (!aud.includes(AUDIENCE)) problems.push(`aud ${aud}`);
      if (payload.sub !== ACCOUNT.sub) problems.push(`sub ${payload.sub}`);
      if (JSON.stringify(payload.roles) !== JSON.stringify(ACCOUNT.roles)) problems.push(`roles ${JSON.stringify(payload.roles)}`);
      if (problems.length) throw new StepFailure(`the access token is not what the APIs expect: ${problems.join(', ')}`);
    });

    await step('read the audit view through the gateway with the token', async () => {
      await page.goto(`${BASE_URL}/audit`);
      await page.click('[data-testid="verify-run"]');
      const result = page.locator('[data-testid="verify-result"]');
      await failOnProblem(page, result, 'verifying the log');
      if ((await result.getAttribute('data-ok')) !== 'true') throw new StepFailure(`verification failed: ${await result.innerText()}`);
      await shot('oidc-03-signed-in');

      const read = await fetch(`${BASE_URL}/api/v1/users?limit=5`, { headers: { Authorization: `Bearer ${token}` } });
      const body = await read.json().catch(() => null);
      if (read.status !== 200 || !Array.isArray(body?.items)) throw new StepFailure(`GET /api/v1/users with the token: HTTP ${read.status} ${JSON.stringify(body)}`);
      if (!read.headers.get('x-projection-position')) throw new StepFailure('the view answered without X-Projection-Position');

      const [h, p, s] = token.split('.');
      const flipped = s[10] === 'A' ? 'B' : 'A';
      const tampered = `${h}.${p}.${s.slice(0, 10)}${flipped}${s.slice(11)}`;
      const refused = await fetch(`${BASE_URL}/api/v1/users?limit=5`, { headers: { Authorization: `Bearer ${tampered}` } });
      const problem = await refused.json().catch(() => null);
      if (refused.status !== 401 || problem?.code !== 'unauthenticated') throw new StepFailure(`a tampered token got HTTP ${refused.status} ${JSON.stringify(problem)}`);
    });

    log(`PASSED: OpenID Connect sign-in against ${issuer}, views read through ${BASE_URL}`);
    return 0;
  } catch (e) {
    const reason = e instanceof StepFailure ? e.message : e?.message ?? String(e);
    console.error(`[e2e-oidc] FAILED at step "${current}": ${reason}`);
    if (trouble.length) console.error(`[e2e-oidc] browser saw:\n  ${trouble.slice(-15).join('\n  ')}`);
    try {
      const alerts = await page.locator('[role="alert"]').allInnerTexts();
      if (alerts.length) console.error(`[e2e-oidc] alerts on the page:\n  ${alerts.join('\n  ').replace(/\n/g, ' | ')}`);
      mkdirSync(SCREENSHOT_DIR, { recursive: true });
      const file = path.join(SCREENSHOT_DIR, `failure-oidc-${current.replace(/[^a-z0-9]+/gi, '-')}.png`);
      await page.screenshot({ path: file, fullPage: true });
      console.error(`[e2e-oidc] screenshot of the failure: ${file} (url ${page.url()})`);
    } catch {
      // The page may be gone; the message above is what matters.
    }
    return 1;
  } finally {
    await close();
  }
}

/** Wait for `target`; if an error alert shows up first, fail with its text. */
async function failOnProblem(page, target, what) {
  const problem = page.locator('[data-testid="problem"]').first();
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    if (await target.first().isVisible().catch(() => false)) return;
    if (await problem.isVisible().catch(() => false)) {
      const code = await problem.getAttribute('data-code');
      if (code !== 'projection_lagging') throw new StepFailure(`${what} failed: ${(await problem.innerText()).replace(/\n/g, ' | ')}`);
    }
    await page.waitForTimeout(100);
  }
  throw new StepFailure(`${what}: nothing happened within ${TIMEOUT} ms (at ${page.url()})`);
}

async function expectVisible(locator, what) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout: TIMEOUT });
  } catch {
    throw new StepFailure(`expected to see ${what}, but it did not appear within ${TIMEOUT} ms`);
  }
}

main()
  .then((code) => process.exit(code))
  .catch((e) => {
    console.error(`[e2e-oidc] FAILED before the browser steps: ${e instanceof StepFailure ? e.message : e?.stack ?? e}`);
    process.exit(1);
  });
