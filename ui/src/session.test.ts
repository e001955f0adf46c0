import { describe, expect, it } from 'vitest';
import { decodeClaims, isExpired, loadSession, millisUntilExpiry, primaryRole, saveSession, sessionFromToken } from './session';

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (claims: unknown) => `${b64url({ alg: 'EdDSA' })}.${b64url(claims)}.sig`;

class MemoryStorage {
  private m = new Map<string, string>();
  getItem(k: string) { return this.m.get(k) ?? null; }
  setItem(k: string, v: string) { this.m.set(k, v); }
  removeItem(k: string) { this.m.delete(k); }
}

describe('tokens', () => {
  it('reads roles from `roles` and Keycloak realm roles', () => {
    expect(decodeClaims(jwt({ sub: 's', roles: ['user'] })).roles).toEqual(['user']);
    expect(decodeClaims(jwt({ sub: 's', realm_access: { roles: ['auditor', 'offline_access'] } })).roles).toEqual(['auditor']);
    expect(primaryRole(['user', 'admin'])).toBe('admin');
  });

  it('builds a session, falling back to the chosen role', () => {
    const s = sessionFromToken(jwt({ sub: 'abc', roles: ['service'], exp: 99 }));
    expect(s).toMatchObject({ role: 'service', sub: 'abc', exp: 99 });
    expect(sessionFromToken(jwt({ sub: 'abc' }), 'admin').role).toBe('admin');
    expect(() => sessionFromToken(jwt({ sub: 'abc' }))).toThrow(/none of the roles/);
    expect(() => sessionFromToken('garbage')).toThrow();
  });

  it('knows expiry and round-trips through storage', () => {
    const st = new MemoryStorage() as unknown as Storage;
    const s = sessionFromToken(jwt({ sub: 'abc', roles: ['admin'], exp: Date.now() / 1000 + 60 }));
    expect(isExpired(s)).toBe(false);
    saveSession(s, st);
    expect(loadSession(st)).toEqual(s);
    saveSession({ ...s, exp: 1 }, st);
    expect(loadSession(st)).toBeNull();
    saveSession(null, st);
    expect(loadSession(st)).toBeNull();
  });

  it('says how long until the token expires', () => {
    const s = sessionFromToken(jwt({ sub: 'abc', roles: ['admin'], exp: 1000 }));
    expect(millisUntilExpiry(s, 400_000)).toBe(600_000);
    expect(millisUntilExpiry(s, 2_000_000)).toBe(0);
    expect(millisUntilExpiry({ ...s, exp: undefined })).toBeUndefined();
    expect(millisUntilExpiry({ ...s, exp: 1e12 }, 0)).toBe(2 ** 31 - 1);
  });
});
