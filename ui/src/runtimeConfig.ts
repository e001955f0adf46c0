// Settings the UI learns at run time, not at build time: `/config.json`, which the gateway
// renders from its environment (compose/gateway/render.sh). One build of ui/dist then
// serves every environment. Absent, unreadable or `{}` means: no OpenID Connect, dev
// sign-in only (what `cargo xtask dev` gives).
import type { OidcSettings } from './oidc';

export interface RuntimeConfig {
  oidc?: OidcSettings;
}

export const RUNTIME_CONFIG_PATH = '/config.json';

/** `{"oidc": {"issuer", "client_id"?, "scope"?}}`; anything unusable is dropped with a warning. */
export function parseRuntimeConfig(doc: unknown, warn: (msg: string) => void = console.warn): RuntimeConfig {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return {};
  const o = (doc as Record<string, unknown>).oidc;
  if (o === undefined || o === null) return {};
  if (typeof o !== 'object' || Array.isArray(o)) {
    warn('config.json: `oidc` is not an object; OpenID Connect sign-in is off.');
    return {};
  }
  const { issuer, client_id: clientId = 'ledger-ui', scope = 'openid' } = o as Record<string, unknown>;
  let url: URL | null = null;
  try {
    url = typeof issuer === 'string' ? new URL(issuer) : null;
  } catch {
    url = null;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    warn('config.json: `oidc.issuer` is not an http(s) URL; OpenID Connect sign-in is off.');
    return {};
  }
  if (typeof clientId !== 'string' || clientId === '' || typeof scope !== 'string') {
    warn('config.json: `oidc.client_id` or `oidc.scope` is not a string; OpenID Connect sign-in is off.');
    return {};
  }
  return { oidc: { issuer: issuer as string, clientId, scope } };
}

export async function loadRuntimeConfig(fetchImpl: typeof fetch = fetch): Promise<RuntimeConfig> {
  try {
    const res = await fetchImpl(RUNTIME_CONFIG_PATH, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    // A dev server without the file may answer index.html: only JSON counts.
    if (!res.ok || !(res.headers.get('Content-Type') ?? '').includes('json')) return {};
    return parseRuntimeConfig(await res.json());
  } catch {
    return {};
  }
}
