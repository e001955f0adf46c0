import { describe, expect, it } from 'vitest';
import { parseRoute, routePath } from './router';

describe('routes', () => {
  it('parses and prints every page', () => {
    for (const path of ['/', '/signin', '/signin/callback', '/users', '/users/abc-1', '/money', '/money?user=u1', '/audit']) {
      const [p, q] = path.split('?');
      expect(routePath(parseRoute(p, q ? `?${q}` : ''))).toBe(path);
    }
    expect(parseRoute('/users/')).toEqual({ page: 'users' });
    expect(parseRoute('/nope')).toEqual({ page: 'not_found', path: '/nope' });
  });
});
