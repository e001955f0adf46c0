import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import type { OperationsStatus, Subscription } from '../api';
import { PipelineCard, SecretOnce, SubscriptionsTable } from './Operations';

const sub = (over: Partial<Subscription> = {}): Subscription => ({
  name: 'billing',
  url: 'https://hooks.example.com/ledger',
  types: ['transaction.*'],
  status: 'active',
  delivered_position: 40,
  head_position: 42,
  lag: 2,
  parked: 0,
  last_error: null,
  ...over,
});

describe('SubscriptionsTable', () => {
  it('shows each subscription with its lag and offers pause or resume by status', () => {
    const html = renderToStaticMarkup(
      <SubscriptionsTable items={[sub(), sub({ name: 'audit', status: 'paused', lag: 0, last_error: 'answered 503' })]} onToggle={() => {}} />,
    );
    expect(html).toContain('data-name="billing"');
    expect(html).toContain('data-lag="2"');
    expect(html).toContain('>Pause</button>');
    expect(html).toContain('>Resume</button>');
    expect(html).toContain('answered 503');
    expect(html).toContain('transaction.*');
  });

  it('says so when there are none', () => {
    expect(renderToStaticMarkup(<SubscriptionsTable items={[]} onToggle={() => {}} />)).toContain('No webhook subscriptions yet');
  });
});

describe('PipelineCard', () => {
  const status: OperationsStatus = {
    head_position: 120,
    relays: [{ name: 'main', position: 118, lag: 2, epoch: 3 }],
    projection: { name: 'main', position: 110, lag: 10 },
    parked: [],
    subscriptions_open: 4,
  };

  it('shows how far the relay and the projection are behind the log, and open streams', () => {
    const html = renderToStaticMarkup(<PipelineCard status={status} />);
    expect(html).toContain('data-testid="relay-lag-main" data-lag="2"');
    expect(html).toContain('term 3');
    expect(html).toContain('data-testid="projection-lag" data-lag="10"');
    expect(html).toContain('data-testid="subscriptions-open">4<');
    expect(html).toContain('skips nothing');
  });

  it('lists parked events with their reason', () => {
    const parked = { ...status, parked: [{ position: 77, event_type: 'transaction.deposited', reason: 'poison: bad amount', parked_at: '2026-12-07T10:00:00Z' }] };
    const html = renderToStaticMarkup(<PipelineCard status={parked} />);
    expect(html).toContain('#77');
    expect(html).toContain('poison: bad amount');
  });
});

describe('SecretOnce', () => {
  it('shows the secret with the subscription it belongs to', () => {
    const html = renderToStaticMarkup(
      <SecretOnce created={{ name: 'billing', url: 'https://h', types: ['#'], after: 0, secret: 'whsec_abc', status: 'active' }} />,
    );
    expect(html).toContain('whsec_abc');
    expect(html).toContain('data-name="billing"');
  });
});
