// The test provider's one account, shared by e2e/oidc-provider.mjs (which signs it in)
// and e2e/oidc.mjs (which types its credentials into the provider's login page).
export const ACCOUNT = {
  // The token's `sub`: the APIs want a UUID.
  sub: process.env.OIDC_TEST_SUB ?? '01900000-0000-7000-8000-0000000a0d17',
  username: process.env.OIDC_TEST_USERNAME ?? 'ada.auditor',
  password: process.env.OIDC_TEST_PASSWORD ?? 'correct horse battery staple',
  name: 'Ada Auditor',
  email: 'ada.auditor@example.com',
  // What the realm's mapper puts in the top-level `roles` claim.
  roles: (process.env.OIDC_TEST_ROLES ?? 'auditor').split(',').filter(Boolean),
};

export const CLIENT_ID = 'ledger-ui';
// What the APIs require in `aud` (JWT_AUDIENCE), as Keycloak's audience mapper adds it.
export const AUDIENCE = 'example-ledger';
