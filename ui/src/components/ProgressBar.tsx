/**
 * Progress of a running backup or restore: a native <progress> (indeterminate when the total
 * is unknown) and a line of bytes, rate and ETA that screen readers hear as it changes.
 */
import { formatBytes, formatDuration } from '../format.js';

export interface ProgressProps {
  label: string;
  /** Bytes done so far. */
  bytes: number;
  /** Expected total, when known. */
  total: number | null;
  percent: number | null;
  rate: number;
  eta: number | null;
}

export function ProgressBar({ label, bytes, total, percent, rate, eta }: ProgressProps) {
  const pct = percent === null ? null : Math.max(0, Math.min(100, percent));
  return (
    <div class="progress" data-bytes={bytes}>
      <progress max={100} value={pct ?? undefined} aria-label={label}>
        {pct === null ? '' : `${pct.toFixed(0)} %`}
      </progress>
      <p class="progress-text" aria-live="polite">
        {pct !== null && <strong>{pct.toFixed(0)} % · </strong>}
        {formatBytes(bytes)}
        {total ? ` of about ${formatBytes(total)}` : ''} · {formatBytes(rate)}/s · {eta === null ? 'ETA unknown' : `about ${formatDuration(eta)} left`}
      </p>
    </div>
  );
}
