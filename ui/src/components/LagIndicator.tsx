import { useEffect } from 'react';
import { useApp } from '../context';
import { usePositions } from '../hooks';
import { computeLag } from '../lag';
import { canAudit, canListUsers } from '../session';

const POLL_MS = 5000;
const HEAD_PAGE = 200;

/**
 * Header badge: how far the read model (the latest X-Projection-Position seen) is behind
 * the newest known write (this session's command positions and, for roles that may read
 * the audit log, the log head). Polls a cheap read every few seconds while the tab is
 * visible so it moves on its own.
 */
export function LagIndicator() {
  const { client, session } = useApp();
  const positions = usePositions();
  const lag = computeLag(positions);

  useEffect(() => {
    if (!session) return;
    let stopped = false;
    const poll = async () => {
      if (document.visibilityState !== 'visible') return;
      const snap = client.positions.get();
      try {
        if (canAudit(session.role)) {
          // Events after what the read model has seen: the log head, cheaply.
          await client.auditEvents({ after: snap.projection ?? snap.logHead ?? 0, limit: HEAD_PAGE });
        } else if (canListUsers(session.role)) {
          await client.listUsers({ limit: 1 }, { minPosition: 0 });
        } else {
          await client.getBalances(session.sub, { minPosition: 0 });
        }
      } catch {
        // The badge keeps its last values; pages show errors themselves.
      }
    };
    void poll();
    const t = window.setInterval(() => {
      if (!stopped) void poll();
    }, POLL_MS);
    return () => {
      stopped = true;
      window.clearInterval(t);
    };
  }, [client, session]);

  const title =
    'Read model position: the latest X-Projection-Position a view answered with. ' +
    'Known log position: the newest position of your own commands' +
    (session && canAudit(session.role) ? ' and of the event log head.' : '.');
  return (
    <div className={`lag lag-${lag.state}`} data-testid="lag" data-state={lag.state} title={title}>
      <span className="lag-dot" aria-hidden="true" />
      <span className="visually-hidden">Projection lag: </span>
      <span>{lag.label}</span>
    </div>
  );
}
