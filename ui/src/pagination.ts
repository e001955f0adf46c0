// Cursor pagination as a stack of cursors: the server only knows "next", so going back
// means remembering the cursors that led here. Also used for the audit log's `after`.

export interface Pager {
  /** Cursors of the pages visited, the current one last; null is the first page. */
  stack: (string | null)[];
  /** The next page's cursor from the current page's answer, if there is one. */
  next: string | null;
}

export const firstPage = (): Pager => ({ stack: [null], next: null });

export const currentCursor = (p: Pager): string | null => p.stack[p.stack.length - 1];

export const pageNumber = (p: Pager): number => p.stack.length;

export const canGoBack = (p: Pager): boolean => p.stack.length > 1;

export const canGoForward = (p: Pager): boolean => p.next !== null;

/** Record what the current page's answer said about the next page. */
export function loaded(p: Pager, nextCursor: string | null | undefined): Pager {
  return { ...p, next: nextCursor ?? null };
}

export function forward(p: Pager): Pager {
  return p.next === null ? p : { stack: [...p.stack, p.next], next: null };
}

export function back(p: Pager): Pager {
  return p.stack.length > 1 ? { stack: p.stack.slice(0, -1), next: null } : p;
}

/**
 * The audit log answers `next_after` (a position). It may be set even on the last page, so
 * a page shorter than the limit means there is nothing after it.
 */
export function auditNextCursor(itemCount: number, limit: number, nextAfter: number | null | undefined): string | null {
  if (nextAfter === null || nextAfter === undefined) return null;
  if (itemCount < limit) return null;
  return String(nextAfter);
}
