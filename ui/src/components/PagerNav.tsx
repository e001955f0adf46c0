import { canGoBack, canGoForward, pageNumber, type Pager } from '../pagination';

export function PagerNav({ pager, onBack, onForward, label, loading }: { pager: Pager; onBack: () => void; onForward: () => void; label: string; loading?: boolean }) {
  return (
    <nav className="pager" aria-label={`${label} pages`}>
      <button type="button" className="btn btn-secondary" onClick={onBack} disabled={!canGoBack(pager) || loading}>
        ← Newer
      </button>
      <span className="pager-page" aria-live="polite">
        Page {pageNumber(pager)}
      </span>
      <button type="button" className="btn btn-secondary" onClick={onForward} disabled={!canGoForward(pager) || loading}>
        Older →
      </button>
    </nav>
  );
}
