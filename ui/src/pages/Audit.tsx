import { useEffect, useState, type FormEvent } from 'react';
import type { AuditEvent, Balances, Problem, Verification } from '../api';
import { problemOf } from '../api';
import { BalancesTable } from '../components/BalancesTable';
import { TextField } from '../components/Field';
import { PagerNav } from '../components/PagerNav';
import { ProblemAlert } from '../components/ProblemAlert';
import { useApp } from '../context';
import { formatTime, localInputToRfc3339, shortId } from '../format';
import { useQuery } from '../hooks';
import { auditNextCursor, back, currentCursor, firstPage, forward, loaded, type Pager } from '../pagination';

const PAGE = 25;

/** The auditor's desk: verify the hash chain, page through the log, replay balances as of a time or position. */
export function AuditPage() {
  return (
    <div className="page">
      <h1>Audit</h1>
      <VerifyCard />
      <AsOfCard />
      <EventLog />
    </div>
  );
}

function VerifyCard() {
  const { client } = useApp();
  const [result, setResult] = useState<Verification | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [pending, setPending] = useState(false);
  const [at, setAt] = useState<Date | null>(null);

  const run = async () => {
    setPending(true);
    setProblem(null);
    try {
      const res = await client.auditVerify();
      setResult(res.data);
      setAt(new Date());
    } catch (e) {
      setProblem(problemOf(e));
      setResult(null);
    } finally {
      setPending(false);
    }
  };

  return (
    <section className="card" aria-labelledby="verify-title">
      <div className="card-head">
        <h2 id="verify-title">Verify the event log</h2>
        <button type="button" className="btn btn-primary" onClick={run} disabled={pending} aria-busy={pending} data-testid="verify-run">
          {pending ? 'Verifying…' : 'Run verification'}
        </button>
      </div>
      <p className="hint">Recomputes the hash chain over every event; any edited, removed or reordered event breaks it.</p>
      <ProblemAlert problem={problem} onRetry={run} context="Verification could not run" />
      {result ? (
        <div
          className={`alert ${result.ok ? 'alert-success' : 'alert-error'}`}
          role="status"
          data-testid="verify-result"
          data-ok={String(result.ok)}
        >
          <p className="alert-title">
            {result.ok ? '✓ Hash chain intact' : `✗ Hash chain broken at position #${result.first_bad_position ?? '?'}`}
          </p>
          <dl className="facts">
            <dt>Events checked</dt>
            <dd>{result.checked}</dd>
            <dt>Head position</dt>
            <dd>{result.head_position ?? '—'}</dd>
            <dt>Head hash</dt>
            <dd>
              <code className="hash">{result.head_hash ?? '—'}</code>
            </dd>
            {!result.ok ? (
              <>
                <dt>First bad position</dt>
                <dd data-testid="first-bad-position">{result.first_bad_position ?? '—'}</dd>
              </>
            ) : null}
            <dt>Checked at</dt>
            <dd>{at ? at.toLocaleString() : '—'}</dd>
          </dl>
        </div>
      ) : null}
    </section>
  );
}

function AsOfCard() {
  const { client } = useApp();
  const [userId, setUserId] = useState('');
  const [mode, setMode] = useState<'time' | 'position'>('time');
  const [time, setTime] = useState('');
  const [position, setPosition] = useState('');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<Problem | null>(null);
  const [pending, setPending] = useState(false);
  const [result, setResult] = useState<{ balances: Balances; label: string } | null>(null);

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    const errs: Record<string, string> = {};
    if (!userId.trim()) errs['asof-user'] = 'Enter a user id.';
    let at: { as_of: string } | { at_position: number } | undefined;
    let label = '';
    if (mode === 'time') {
      const iso = localInputToRfc3339(time);
      if (!iso) errs['asof-time'] = 'Pick a date and time.';
      else {
        at = { as_of: iso };
        label = `as of ${new Date(iso).toLocaleString()} (${iso})`;
      }
    } else {
      if (!/^\d+$/.test(position.trim())) errs['asof-position'] = 'Enter a log position (a whole number).';
      else {
        at = { at_position: Number(position.trim()) };
        label = `at log position #${position.trim()}`;
      }
    }
    setErrors(errs);
    if (Object.keys(errs).length > 0 || !at) return;
    setPending(true);
    setProblem(null);
    try {
      const res = await client.auditBalances(userId.trim(), at);
      setResult({ balances: res.data, label });
    } catch (err) {
      setProblem(problemOf(err));
      setResult(null);
    } finally {
      setPending(false);
    }
  };

  return (
    <section className="card" aria-labelledby="asof-title">
      <h2 id="asof-title">Balances as they were</h2>
      <p className="hint">Replayed from the event log with the same rules the commands use.</p>
      <form onSubmit={onSubmit} noValidate data-testid="asof-form">
        <div className="row">
          <TextField id="asof-user" label="User id" value={userId} onChange={(e) => setUserId(e.target.value)} autoComplete="off" spellCheck={false} error={errors['asof-user']} />
        </div>
        <fieldset className="segmented">
          <legend>Point in history</legend>
          <label className={mode === 'time' ? 'selected' : ''}>
            <input type="radio" name="asof-mode" checked={mode === 'time'} onChange={() => setMode('time')} />
            <span>At a time</span>
          </label>
          <label className={mode === 'position' ? 'selected' : ''}>
            <input type="radio" name="asof-mode" checked={mode === 'position'} onChange={() => setMode('position')} />
            <span>At a log position</span>
          </label>
        </fieldset>
        <div className="row">
          {mode === 'time' ? (
            <TextField id="asof-time" label="Time (your local time)" type="datetime-local" step={1} value={time} onChange={(e) => setTime(e.target.value)} error={errors['asof-time']} />
          ) : (
            <TextField id="asof-position" label="Log position" inputMode="numeric" value={position} onChange={(e) => setPosition(e.target.value)} error={errors['asof-position']} />
          )}
        </div>
        <ProblemAlert problem={problem} context="Replay failed" />
        <button type="submit" className="btn btn-primary" disabled={pending} aria-busy={pending}>
          {pending ? 'Replaying…' : 'Show balances'}
        </button>
      </form>
      {result ? <BalancesTable balances={result.balances.balances} caption={`Balances ${result.label}`} testId="asof-balances" /> : null}
    </section>
  );
}

function EventLog() {
  const { client } = useApp();
  const [pager, setPager] = useState<Pager>(firstPage);
  const [stream, setStream] = useState('');
  const [appliedStream, setAppliedStream] = useState('');
  const cursor = currentCursor(pager);
  const after = cursor === null ? undefined : Number(cursor);
  const events = useQuery(`audit:${appliedStream}:${cursor ?? ''}`, async (_min, signal) =>
    (await client.auditEvents({ after, limit: PAGE, stream: appliedStream || undefined }, { signal })).data,
  );
  useEffect(() => {
    if (events.data) setPager((p) => loaded(p, auditNextCursor(events.data!.items.length, PAGE, events.data!.next_after)));
  }, [events.data]);

  return (
    <section className="card" aria-labelledby="log-title" aria-busy={events.loading}>
      <div className="card-head">
        <h2 id="log-title">Event log</h2>
        <button type="button" className="btn btn-secondary" onClick={() => events.reload()} disabled={events.loading}>
          Refresh
        </button>
      </div>
      <p className="hint">Oldest first, in log position order. Personal data inside events is ciphertext.</p>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          setAppliedStream(stream.trim());
          setPager(firstPage());
        }}
      >
        <TextField id="log-stream" label="Only stream (optional)" value={stream} onChange={(e) => setStream(e.target.value)} placeholder="stream id" autoComplete="off" spellCheck={false} />
        <button type="submit" className="btn btn-secondary">
          Filter
        </button>
      </form>
      <ProblemAlert problem={events.problem} onRetry={() => events.reload()} context="Could not load the event log" />
      {events.data ? (
        events.data.items.length === 0 ? (
          <p className="empty">No events{appliedStream ? ' in that stream' : ''}.</p>
        ) : (
          <div className="table-scroll">
            <table className="table table-compact" data-testid="audit-events">
              <thead>
                <tr>
                  <th scope="col" className="num">Position</th>
                  <th scope="col">Recorded</th>
                  <th scope="col">Type</th>
                  <th scope="col">Stream / version</th>
                  <th scope="col">Hash</th>
                  <th scope="col">Payload</th>
                </tr>
              </thead>
              <tbody>
                {events.data.items.map((ev) => (
                  <EventRow key={ev.position} ev={ev} />
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : events.loading ? (
        <p className="loading">Loading…</p>
      ) : null}
      <PagerNav label="Event log" pager={pager} loading={events.loading} onBack={() => setPager(back)} onForward={() => setPager(forward)} />
    </section>
  );
}

function EventRow({ ev }: { ev: AuditEvent }) {
  return (
    <tr>
      <td className="num">#{ev.position}</td>
      <td>{formatTime(ev.recorded_at)}</td>
      <td>
        <code>{ev.event_type}</code> <span className="hint-inline">v{ev.schema_version}</span>
      </td>
      <td>
        <code title={ev.stream_id}>{shortId(ev.stream_id)}</code> / {ev.stream_version}
      </td>
      <td>
        <code className="hash" title={`hash ${ev.hash}\nprev ${ev.prev_hash}`}>
          {ev.hash.slice(0, 12)}…
        </code>
      </td>
      <td>
        <details>
          <summary>Show</summary>
          <pre className="json">{JSON.stringify({ event_id: ev.event_id, data: ev.data, metadata: ev.metadata, prev_hash: ev.prev_hash, hash: ev.hash }, null, 2)}</pre>
        </details>
      </td>
    </tr>
  );
}
