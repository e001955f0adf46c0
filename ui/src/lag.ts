// The projection lag shown in the header: how far the read model (X-Projection-Position of
// the latest answer) is behind the newest position we know was written (our own commands'
// positions, and the log head for roles that may read the audit log).
import type { PositionSnapshot } from './api';

export type LagState = 'unknown' | 'in_sync' | 'behind';

export interface Lag {
  state: LagState;
  projection?: number;
  /** The newest position known to exist in the log. */
  target?: number;
  /** Events the read model is behind, when known. */
  behind?: number;
  /** True when `target` is a lower bound, so `behind` is "at least". */
  atLeast: boolean;
  /** One line for the header. */
  label: string;
}

export function computeLag(s: PositionSnapshot): Lag {
  const candidates: number[] = [];
  if (s.lastWrite !== undefined) candidates.push(s.lastWrite);
  if (s.logHead !== undefined) candidates.push(s.logHead);
  const target = candidates.length > 0 ? Math.max(...candidates) : undefined;
  const atLeast = s.logHead !== undefined && s.logHead === target && s.logHeadIsLowerBound === true;

  if (s.projection === undefined) {
    return {
      state: 'unknown',
      target,
      atLeast,
      label: target === undefined ? 'Read model: no answer yet' : `Read model: not seen yet · log at #${target}`,
    };
  }
  if (target === undefined || s.projection >= target) {
    return {
      state: 'in_sync',
      projection: s.projection,
      target: target ?? s.projection,
      behind: 0,
      atLeast: false,
      label: `Read model at #${s.projection} · in sync`,
    };
  }
  const behind = target - s.projection;
  return {
    state: 'behind',
    projection: s.projection,
    target,
    behind,
    atLeast,
    label: `Read model at #${s.projection} of ${atLeast ? '≥' : ''}#${target} · ${atLeast ? '≥' : ''}${behind} event${behind === 1 ? '' : 's'} behind`,
  };
}
