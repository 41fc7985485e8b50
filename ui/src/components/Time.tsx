/** A timestamp in local time, the exact ISO time on hover, and optionally how long ago. */
import { formatRelative, formatTime } from '../format.js';

export function Time({ iso, relative = false }: { iso: string | null | undefined; relative?: boolean }) {
  if (!iso) return <span class="muted">—</span>;
  return (
    <time dateTime={iso} title={iso}>
      {formatTime(iso)}
      {relative && <span class="muted"> ({formatRelative(iso)})</span>}
    </time>
  );
}
