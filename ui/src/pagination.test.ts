import { describe, expect, it } from 'vitest';
import { auditNextCursor, back, canGoBack, canGoForward, currentCursor, firstPage, forward, loaded, pageNumber } from './pagination';

describe('cursor pager', () => {
  it('walks forward with next_cursor and back through the stack', () => {
    let p = firstPage();
    expect(currentCursor(p)).toBeNull();
    expect(canGoBack(p)).toBe(false);
    expect(canGoForward(p)).toBe(false);

    p = loaded(p, 'c2');
    expect(canGoForward(p)).toBe(true);
    p = forward(p);
    expect(currentCursor(p)).toBe('c2');
    expect(pageNumber(p)).toBe(2);
    expect(canGoForward(p)).toBe(false); // until page 2 has answered

    p = forward(loaded(p, 'c3'));
    expect(currentCursor(p)).toBe('c3');
    p = loaded(p, null);
    expect(canGoForward(p)).toBe(false);
    expect(forward(p)).toBe(p);

    p = back(p);
    expect(currentCursor(p)).toBe('c2');
    p = back(back(p));
    expect(currentCursor(p)).toBeNull();
    expect(pageNumber(p)).toBe(1);
  });

  it('treats a short audit page as the last one', () => {
    expect(auditNextCursor(25, 25, 125)).toBe('125');
    expect(auditNextCursor(3, 25, 125)).toBeNull();
    expect(auditNextCursor(25, 25, null)).toBeNull();
  });
});
