/** Previous / next buttons for a PlanetScale list envelope. */
import { plural } from '../format.js';

export function Pager({ page, totalPages, total, noun, onPage }: { page: number; totalPages: number; total: number; noun: string; onPage: (page: number) => void }) {
  return (
    <nav class="pager" aria-label={`${noun} pages`}>
      <button type="button" disabled={page <= 1} onClick={() => onPage(page - 1)}>
        ← Newer
      </button>
      <span>
        Page {page} of {Math.max(totalPages, 1)} ({plural(total, noun)})
      </span>
      <button type="button" disabled={page >= totalPages} onClick={() => onPage(page + 1)}>
        Older →
      </button>
    </nav>
  );
}
