import type { Problem } from '../api';
import { isTransient, messageForProblem } from '../messages';

/**
 * A failed request, in words, with the status and stable code (for support and for the
 * e2e test), the server's detail when it adds something, and a retry button for failures
 * where retrying makes sense.
 */
export function ProblemAlert({ problem, onRetry, context }: { problem: Problem | null; onRetry?: () => void; context?: string }) {
  if (!problem) return null;
  const message = messageForProblem(problem);
  const showDetail = problem.detail && problem.detail !== message;
  const unnamed = problem.errors.filter((e) => !e.field);
  return (
    <div className="alert alert-error" role="alert" data-testid="problem" data-code={problem.code} data-status={problem.status}>
      <p className="alert-title">
        {context ? `${context}: ` : ''}
        {message}
      </p>
      <p className="alert-meta">
        <span className="badge">{problem.status === 0 ? 'no answer' : problem.status}</span> <code>{problem.code}</code>
        {showDetail ? <span className="alert-detail"> — {problem.detail}</span> : null}
        {problem.retryAfter !== undefined ? <span> · retry after {problem.retryAfter}s</span> : null}
      </p>
      {unnamed.length > 0 ? (
        <ul>
          {unnamed.map((e, i) => (
            <li key={i}>{e.message || e.code}</li>
          ))}
        </ul>
      ) : null}
      {problem.correlationId ? <p className="alert-ref">Reference: <code>{problem.correlationId}</code></p> : null}
      {onRetry && isTransient(problem) ? (
        <button type="button" className="btn btn-secondary" onClick={onRetry}>
          Retry
        </button>
      ) : null}
    </div>
  );
}
