import { useEffect, useState, type FormEvent } from 'react';
import type { CreatedSubscription, OperationsStatus, Problem, Subscription } from '../api';
import { problemOf } from '../api';
import { TextField } from '../components/Field';
import { ProblemAlert } from '../components/ProblemAlert';
import { useApp } from '../context';
import { formatTime } from '../format';

/** How often the page reads the pipeline and the subscriptions again. */
const REFRESH_MS = 2000;

/** The operator's page: webhook subscriptions, the relay and projection lag, parked events. */
export function OperationsPage() {
  const { client } = useApp();
  const [subs, setSubs] = useState<Subscription[] | null>(null);
  const [status, setStatus] = useState<OperationsStatus | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    const ctrl = new AbortController();
    Promise.all([client.listSubscriptions({ signal: ctrl.signal }), client.operationsStatus({ signal: ctrl.signal })])
      .then(([s, o]) => {
        setSubs(s.data.items);
        setStatus(o.data);
        setProblem(null);
      })
      .catch((e) => {
        if (!ctrl.signal.aborted) setProblem(problemOf(e));
      });
    const timer = window.setTimeout(() => setTick((t) => t + 1), REFRESH_MS);
    return () => {
      ctrl.abort();
      window.clearTimeout(timer);
    };
  }, [client, tick]);

  const refresh = () => setTick((t) => t + 1);

  const toggle = async (s: Subscription) => {
    try {
      await client.setSubscriptionPaused(s.name, s.status === 'active');
      refresh();
    } catch (e) {
      setProblem(problemOf(e));
    }
  };

  return (
    <div className="page">
      <h1>Operations</h1>
      <ProblemAlert problem={problem} onRetry={refresh} context="Could not read the operations status" />
      {status ? <PipelineCard status={status} /> : null}
      <section className="card" aria-labelledby="webhooks-title">
        <div className="card-head">
          <h2 id="webhooks-title">Webhook subscriptions</h2>
        </div>
        <p className="hint">Each matching event is POSTed, signed, in order, until the receiver answers 2xx.</p>
        {subs ? <SubscriptionsTable items={subs} onToggle={toggle} /> : <p>Loading…</p>}
        <NewSubscriptionForm onCreated={refresh} />
      </section>
    </div>
  );
}

/** Relay and projection lag, open Server-Sent Events subscriptions, parked events. */
export function PipelineCard({ status }: { status: OperationsStatus }) {
  return (
    <section className="card" aria-labelledby="pipeline-title" data-testid="pipeline">
      <div className="card-head">
        <h2 id="pipeline-title">Pipeline</h2>
      </div>
      <dl className="facts">
        <dt>Log head</dt>
        <dd data-testid="head-position">#{status.head_position}</dd>
        {status.relays.map((r) => (
          <RelayFacts key={r.name} relay={r} />
        ))}
        <dt>Projection “{status.projection.name}”</dt>
        <dd data-testid="projection-lag" data-lag={status.projection.lag}>
          at #{status.projection.position}, {status.projection.lag} behind
        </dd>
        <dt>Open event streams (this replica)</dt>
        <dd data-testid="subscriptions-open">{status.subscriptions_open}</dd>
      </dl>
      <h3>Parked events</h3>
      {status.parked.length === 0 ? (
        <p data-testid="parked-none">None: the projection skips nothing.</p>
      ) : (
        <table className="table" data-testid="parked">
          <thead>
            <tr>
              <th scope="col">Position</th>
              <th scope="col">Type</th>
              <th scope="col">Reason</th>
              <th scope="col">Parked</th>
            </tr>
          </thead>
          <tbody>
            {status.parked.map((p) => (
              <tr key={p.position}>
                <td>#{p.position}</td>
                <td>{p.event_type ?? '—'}</td>
                <td>{p.reason}</td>
                <td>{formatTime(p.parked_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function RelayFacts({ relay }: { relay: OperationsStatus['relays'][number] }) {
  return (
    <>
      <dt>Relay “{relay.name}” (term {relay.epoch})</dt>
      <dd data-testid={`relay-lag-${relay.name}`} data-lag={relay.lag}>
        at #{relay.position}, {relay.lag} behind
      </dd>
    </>
  );
}

/** The subscriptions with their progress; pause or resume each. */
export function SubscriptionsTable({ items, onToggle }: { items: Subscription[]; onToggle: (s: Subscription) => void }) {
  if (items.length === 0) return <p data-testid="webhooks-none">No webhook subscriptions yet.</p>;
  return (
    <table className="table" data-testid="webhooks">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">URL</th>
          <th scope="col">Types</th>
          <th scope="col">Status</th>
          <th scope="col">Delivered</th>
          <th scope="col">Lag</th>
          <th scope="col">Last error</th>
          <th scope="col">
            <span className="visually-hidden">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {items.map((s) => (
          <tr key={s.name} data-name={s.name} data-status={s.status} data-lag={s.lag}>
            <td>
              <code>{s.name}</code>
            </td>
            <td>
              <code>{s.url}</code>
            </td>
            <td>{s.types.join(', ')}</td>
            <td>
              <span className={`badge ${s.status === 'active' ? 'badge-ok' : ''}`}>{s.status}</span>
            </td>
            <td>#{s.delivered_position}</td>
            <td data-testid="webhook-lag">{s.lag}</td>
            <td>{s.last_error ? <span className="error-text">{s.last_error}</span> : '—'}</td>
            <td>
              <button type="button" className="btn btn-link" onClick={() => onToggle(s)} data-testid={`toggle-${s.name}`}>
                {s.status === 'active' ? 'Pause' : 'Resume'}
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function NewSubscriptionForm({ onCreated }: { onCreated: () => void }) {
  const { client } = useApp();
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [types, setTypes] = useState('#');
  const [fromStart, setFromStart] = useState(false);
  const [created, setCreated] = useState<CreatedSubscription | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [pending, setPending] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setPending(true);
    setProblem(null);
    try {
      const patterns = types
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '');
      const res = await client.createSubscription({ name, url, types: patterns, after: fromStart ? 0 : undefined });
      setCreated(res.data);
      setName('');
      setUrl('');
      onCreated();
    } catch (err) {
      setProblem(problemOf(err));
    } finally {
      setPending(false);
    }
  };

  return (
    <form onSubmit={submit} className="form" aria-labelledby="new-webhook-title">
      <h3 id="new-webhook-title">New webhook</h3>
      <TextField id="webhook-name" label="Name" hint="a-z, 0-9 and -, up to 64" value={name} onChange={(e) => setName(e.target.value)} />
      <TextField id="webhook-url" label="URL" hint="https (http only on a development stack)" value={url} onChange={(e) => setUrl(e.target.value)} />
      <TextField id="webhook-types" label="Event types" hint="comma-separated patterns: transaction.*, user.#, # for all" value={types} onChange={(e) => setTypes(e.target.value)} />
      <label className="check">
        <input type="checkbox" checked={fromStart} onChange={(e) => setFromStart(e.target.checked)} data-testid="webhook-from-start" /> Deliver the whole
        history (from position 0)
      </label>
      <ProblemAlert problem={problem} context="The subscription was not made" />
      <button type="submit" className="btn btn-primary" disabled={pending} aria-busy={pending} data-testid="webhook-submit">
        {pending ? 'Making…' : 'Make subscription'}
      </button>
      {created ? <SecretOnce created={created} /> : null}
    </form>
  );
}

/** The secret, shown once: the receiver verifies every delivery with it. */
export function SecretOnce({ created }: { created: CreatedSubscription }) {
  return (
    <div className="alert alert-success" role="status" data-testid="webhook-created" data-name={created.name}>
      <p className="alert-title">Subscription “{created.name}” made, delivering after #{created.after}.</p>
      <p>
        Its signing secret, shown only now — store it with the receiver: <code data-testid="webhook-secret">{created.secret}</code>
      </p>
    </div>
  );
}
