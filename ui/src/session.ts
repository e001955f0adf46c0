// Who is signed in. The token lives in sessionStorage (gone when the tab closes) and in
// memory; its claims are decoded only to label the UI and pick the pages a role may use.
// The APIs verify the token; nothing here trusts it.
import { ROLES, type Role } from './api';

export interface Session {
  token: string;
  role: Role;
  roles: Role[];
  sub: string;
  /** Expiry, seconds since epoch, when the token says. */
  exp?: number;
  /** Signed in through the identity provider: what ending its session takes. */
  idp?: { endSession: string; idToken: string; clientId: string };
}

export interface Claims {
  sub?: string;
  roles: Role[];
  exp?: number;
}

const STORAGE_KEY = 'ledger.session';

function base64UrlDecode(s: string): string {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '=');
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The claims of a JWT (unverified). Roles come from `roles` or Keycloak's `realm_access.roles`. */
export function decodeClaims(token: string): Claims {
  const parts = token.trim().split('.');
  if (parts.length < 2) throw new Error('That is not a JWT (expected three dot-separated parts).');
  let payload: unknown;
  try {
    payload = JSON.parse(base64UrlDecode(parts[1]));
  } catch {
    throw new Error('The token payload could not be read.');
  }
  if (typeof payload !== 'object' || payload === null) throw new Error('The token payload is not an object.');
  const p = payload as Record<string, unknown>;
  const raw: unknown[] = [];
  if (Array.isArray(p.roles)) raw.push(...p.roles);
  if (typeof p.role === 'string') raw.push(p.role);
  const realm = p.realm_access as { roles?: unknown } | undefined;
  if (realm && Array.isArray(realm.roles)) raw.push(...realm.roles);
  const roles = ROLES.filter((r) => raw.includes(r));
  return {
    sub: typeof p.sub === 'string' ? p.sub : undefined,
    roles,
    exp: typeof p.exp === 'number' ? p.exp : undefined,
  };
}

/** The role the UI acts as: the most capable one the token carries. */
export function primaryRole(roles: readonly Role[]): Role | undefined {
  for (const r of ['admin', 'service', 'auditor', 'user'] as const) if (roles.includes(r)) return r;
  return undefined;
}

export function sessionFromToken(token: string, fallbackRole?: Role): Session {
  const claims = decodeClaims(token);
  const role = primaryRole(claims.roles) ?? fallbackRole;
  if (!role) throw new Error('The token carries none of the roles admin, user, service, auditor.');
  if (!claims.sub) throw new Error('The token has no subject (sub).');
  return { token: token.trim(), role, roles: claims.roles.length ? claims.roles : [role], sub: claims.sub, exp: claims.exp };
}

export function isExpired(s: Session, nowSeconds: number = Date.now() / 1000): boolean {
  return s.exp !== undefined && s.exp <= nowSeconds;
}

/** Milliseconds until the token expires (0 when it has), capped to what setTimeout can wait; undefined without `exp`. */
export function millisUntilExpiry(s: Session, nowMs: number = Date.now()): number | undefined {
  if (s.exp === undefined) return undefined;
  return Math.min(Math.max(0, s.exp * 1000 - nowMs), 2 ** 31 - 1);
}

export function loadSession(storage: Storage | undefined = globalThis.sessionStorage): Session | null {
  try {
    const raw = storage?.getItem(STORAGE_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    if (typeof s.token !== 'string' || !ROLES.includes(s.role) || typeof s.sub !== 'string') return null;
    return isExpired(s) ? null : s;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null, storage: Storage | undefined = globalThis.sessionStorage): void {
  try {
    if (s) storage?.setItem(STORAGE_KEY, JSON.stringify(s));
    else storage?.removeItem(STORAGE_KEY);
  } catch {
    // Storage can be disabled; the session then lives in memory only.
  }
}

// What each role may see; the APIs enforce it, this only hides pages that would 403.
export const canListUsers = (r: Role) => r === 'admin' || r === 'service' || r === 'auditor';
export const canCommand = (r: Role) => r === 'admin' || r === 'service' || r === 'user';
export const canAudit = (r: Role) => r === 'admin' || r === 'auditor';
