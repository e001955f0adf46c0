import { describe, expect, it } from 'vitest';
import { loadRuntimeConfig, parseRuntimeConfig } from './runtimeConfig';

const quiet = () => {};

describe('runtime config', () => {
  it('reads the OpenID Connect settings, with defaults for client and scope', () => {
    expect(parseRuntimeConfig({ oidc: { issuer: 'http://127.0.0.1:9180' } })).toEqual({
      oidc: { issuer: 'http://127.0.0.1:9180', clientId: 'ledger-ui', scope: 'openid' },
    });
    expect(parseRuntimeConfig({ oidc: { issuer: 'https://kc/realms/ledger', client_id: 'ui', scope: 'openid ledger' } })).toEqual({
      oidc: { issuer: 'https://kc/realms/ledger', clientId: 'ui', scope: 'openid ledger' },
    });
  });

  it('means dev sign-in only when empty or unusable', () => {
    const warnings: string[] = [];
    const warn = (m: string) => warnings.push(m);
    expect(parseRuntimeConfig({})).toEqual({});
    expect(parseRuntimeConfig(null)).toEqual({});
    expect(parseRuntimeConfig({ oidc: null })).toEqual({});
    expect(warnings).toHaveLength(0);
    expect(parseRuntimeConfig({ oidc: 'yes' }, warn)).toEqual({});
    expect(parseRuntimeConfig({ oidc: { issuer: 'ftp://x' } }, warn)).toEqual({});
    expect(parseRuntimeConfig({ oidc: { issuer: 'not a url' } }, warn)).toEqual({});
    expect(parseRuntimeConfig({ oidc: { issuer: 'https://kc', client_id: 7 } }, warn)).toEqual({});
    expect(warnings).toHaveLength(4);
  });

  it('treats a missing file or an HTML fallback as no config', async () => {
    const answer = (body: string, status: number, type: string) =>
      (async () => new Response(body, { status, headers: { 'Content-Type': type } })) as unknown as typeof fetch;
    expect(await loadRuntimeConfig(answer('not found', 404, 'text/plain'))).toEqual({});
    expect(await loadRuntimeConfig(answer('<!doctype html>', 200, 'text/html'))).toEqual({});
    expect(await loadRuntimeConfig(answer('{', 200, 'application/json'))).toEqual({});
    const down = (async () => {
      throw new TypeError('Failed to fetch');
    }) as unknown as typeof fetch;
    expect(await loadRuntimeConfig(down)).toEqual({});
    const ok = answer(JSON.stringify({ oidc: { issuer: 'http://127.0.0.1:9180' } }), 200, 'application/json');
    expect((await loadRuntimeConfig(ok)).oidc?.issuer).toBe('http://127.0.0.1:9180');
    expect(parseRuntimeConfig({ oidc: { issuer: 'https://x' } }, quiet).oidc?.clientId).toBe('ledger-ui');
  });
});
