import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { parseProblem } from '../api';
import { TextField } from './Field';
import { ProblemAlert } from './ProblemAlert';

describe('TextField', () => {
  it('labels the input and ties the error to it for assistive technology', () => {
    const html = renderToStaticMarkup(<TextField id="amount" label="Amount" error="Too large." hint="In EUR." value="" onChange={() => {}} />);
    expect(html).toContain('<label for="amount">Amount</label>');
    expect(html).toContain('aria-invalid="true"');
    expect(html).toContain('aria-describedby="amount-hint amount-error"');
    expect(html).toContain('id="amount-error"');
  });

  it('has no error markup without an error', () => {
    const html = renderToStaticMarkup(<TextField id="email" label="E-mail" value="" onChange={() => {}} />);
    expect(html).not.toContain('aria-invalid');
    expect(html).not.toContain('aria-describedby');
  });
});

describe('ProblemAlert', () => {
  it('shows the human message, status and code as an alert', () => {
    const p = parseProblem(403, 'application/problem+json', '{"code":"forbidden","detail":"not your account"}');
    p.correlationId = 'corr-1';
    const html = renderToStaticMarkup(<ProblemAlert problem={p} context="Could not load" />);
    expect(html).toContain('role="alert"');
    expect(html).toContain('data-code="forbidden"');
    expect(html).toContain('403');
    expect(html).toContain('Could not load: You are not allowed');
    expect(html).toContain('not your account');
    expect(html).toContain('corr-1');
  });

  it('offers retry only for transient problems', () => {
    const lagging = parseProblem(503, 'application/problem+json', '{"code":"projection_lagging"}', '1');
    expect(renderToStaticMarkup(<ProblemAlert problem={lagging} onRetry={() => {}} />)).toContain('Retry');
    const rejected = parseProblem(409, 'application/problem+json', '{"code":"insufficient_funds"}');
    expect(renderToStaticMarkup(<ProblemAlert problem={rejected} onRetry={() => {}} />)).not.toContain('Retry</button>');
  });

  it('renders nothing without a problem', () => {
    expect(renderToStaticMarkup(<ProblemAlert problem={null} />)).toBe('');
  });
});
