import { describe, expect, it } from 'vitest';
import { computeLag } from './lag';

describe('computeLag', () => {
  it('is unknown before any view answered', () => {
    expect(computeLag({}).state).toBe('unknown');
    expect(computeLag({ lastWrite: 4 })).toMatchObject({ state: 'unknown', target: 4 });
  });

  it('is in sync when the projection has every known write', () => {
    expect(computeLag({ projection: 10 })).toMatchObject({ state: 'in_sync', behind: 0 });
    expect(computeLag({ projection: 10, lastWrite: 10, logHead: 9 })).toMatchObject({ state: 'in_sync', behind: 0 });
  });

  it('counts events behind the newest known position', () => {
    const lag = computeLag({ projection: 10, lastWrite: 13 });
    expect(lag).toMatchObject({ state: 'behind', behind: 3, target: 13, atLeast: false });
    expect(lag.label).toBe('Read model at #10 of #13 · 3 events behind');
    expect(computeLag({ projection: 10, lastWrite: 11 }).label).toContain('1 event behind');
  });

  it('uses the log head and marks a lower bound', () => {
    const lag = computeLag({ projection: 10, lastWrite: 12, logHead: 210, logHeadIsLowerBound: true });
    expect(lag).toMatchObject({ state: 'behind', behind: 200, target: 210, atLeast: true });
    expect(lag.label).toContain('≥200');
    expect(computeLag({ projection: 10, lastWrite: 300, logHead: 210, logHeadIsLowerBound: true }).atLeast).toBe(false);
  });
});
