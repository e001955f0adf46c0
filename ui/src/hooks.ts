import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { ApiError, problemOf, type CommandAnswer, type PositionSnapshot, type Problem } from './api';
import { useApp } from './context';
import { beginAttempt, finishAttempt, fingerprint, type Attempt } from './submission';

/** How often a read that got 503 projection_lagging is repeated without the user asking. */
const AUTO_RETRIES = 3;

export interface QueryState<T> {
  data: T | undefined;
  problem: Problem | null;
  loading: boolean;
  /** Load again; `minPosition` makes the read wait for that log position (read-your-writes). */
  reload: (minPosition?: number) => void;
}

/**
 * Runs `load` when `key` changes and on `reload`. `load` gets the position to wait for
 * (undefined: the client's own read-your-writes default) and an abort signal.
 */
export function useQuery<T>(
  key: string | null,
  load: (minPosition: number | undefined, signal: AbortSignal) => Promise<T>,
): QueryState<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [loading, setLoading] = useState(key !== null);
  const [tick, setTick] = useState<{ n: number; min?: number }>({ n: 0 });
  const loadRef = useRef(load);
  loadRef.current = load;
  const autoRetries = useRef(0);

  useEffect(() => {
    if (key === null) {
      setLoading(false);
      return;
    }
    const ctrl = new AbortController();
    let timer: number | undefined;
    setLoading(true);
    loadRef
      .current(tick.min, ctrl.signal)
      .then((d) => {
        if (ctrl.signal.aborted) return;
        autoRetries.current = 0;
        setData(d);
        setProblem(null);
      })
      .catch((e) => {
        if (ctrl.signal.aborted || (e instanceof DOMException && e.name === 'AbortError')) return;
        const p = problemOf(e);
        setProblem(p);
        // The write is committed and the projection is on its way: read again by itself
        // a few times (after Retry-After) before leaving it to the Retry button.
        if (p.code === 'projection_lagging' && autoRetries.current < AUTO_RETRIES) {
          autoRetries.current += 1;
          timer = window.setTimeout(() => setTick((t) => ({ n: t.n + 1, min: t.min })), (p.retryAfter ?? 1) * 1000);
        }
      })
      .finally(() => {
        if (!ctrl.signal.aborted) setLoading(false);
      });
    return () => {
      ctrl.abort();
      window.clearTimeout(timer);
    };
  }, [key, tick]);

  const reload = useCallback((min?: number) => {
    autoRetries.current = 0;
    setTick((t) => ({ n: t.n + 1, min }));
  }, []);
  return { data, problem, loading, reload };
}

export interface CommandState {
  pending: boolean;
  problem: Problem | null;
  result: CommandAnswer | null;
  /** Sends `payload` with `send`; the same payload retried after an uncertain failure keeps its Idempotency-Key. */
  submit: (payload: unknown, send: (idempotencyKey: string) => Promise<CommandAnswer>) => Promise<CommandAnswer | null>;
  reset: () => void;
}

export function useCommand(): CommandState {
  const { client } = useApp();
  const attempt = useRef<Attempt | null>(null);
  const [pending, setPending] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [result, setResult] = useState<CommandAnswer | null>(null);

  const submit = useCallback<CommandState['submit']>(
    async (payload, send) => {
      const a = beginAttempt(attempt.current, fingerprint(payload), () => client.newIdempotencyKey());
      attempt.current = a;
      setPending(true);
      setProblem(null);
      try {
        const answer = await send(a.key);
        attempt.current = finishAttempt(a, { ok: true });
        setResult(answer);
        return answer;
      } catch (e) {
        const p = problemOf(e);
        attempt.current = finishAttempt(a, { ok: false, problem: p });
        setProblem(p);
        setResult(null);
        if (!(e instanceof ApiError)) console.error(e);
        return null;
      } finally {
        setPending(false);
      }
    },
    [client],
  );

  const reset = useCallback(() => {
    attempt.current = null;
    setProblem(null);
    setResult(null);
  }, []);

  return { pending, problem, result, submit, reset };
}

export function usePositions(): PositionSnapshot {
  const { client } = useApp();
  return useSyncExternalStore(client.positions.subscribe, client.positions.get, client.positions.get);
}
