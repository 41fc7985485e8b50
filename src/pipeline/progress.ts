/**
 * Progress figures (rate, ETA, percent) for a running backup or restore, computed from
 * a byte count; pure so the API and the CLI show the same numbers.
 */

/** Input of {@link progressSnapshot}. Times are milliseconds (e.g. Date.now()). */
export interface ProgressInput {
  /** Bytes transferred so far. */
  bytes: number;
  /** When the transfer started. */
  startedAt: number;
  /** The time the snapshot describes. */
  now: number;
  /** Expected total bytes (e.g. the database size), when known. Only an estimate. */
  totalEstimate?: number | null;
  /** The transfer has finished: percent is 100 and the ETA 0. */
  done?: boolean;
}

/** What a client is shown about a transfer in progress. */
export interface ProgressSnapshot {
  bytes: number;
  /** Average rate since the start, in whole bytes per second. */
  rate_bytes_per_second: number;
  /** Seconds left at the average rate, or null when there is no usable estimate. */
  eta_seconds: number | null;
  /** Whole percent done, or null without an estimate; never 100 before `done`. */
  percent: number | null;
}

/**
 * Rate, ETA and percent of a transfer. Estimates (a database's on-disk size) are rough,
 * so percent is clamped to 99 until the transfer is done, and once the bytes exceed the
 * estimate the ETA is unknown (null) rather than a misleading 0.
 */
export function progressSnapshot(input: ProgressInput): ProgressSnapshot {
  const { bytes, startedAt, now, totalEstimate, done = false } = input;
  const elapsedSeconds = Math.max(0, now - startedAt) / 1000;
  const rate = elapsedSeconds > 0 ? bytes / elapsedSeconds : 0;
  const estimate = totalEstimate != null && totalEstimate > 0 ? totalEstimate : null;

  let percent: number | null = null;
  let eta: number | null = null;
  if (done) {
    percent = 100;
    eta = 0;
  } else if (estimate !== null) {
    percent = Math.min(99, Math.floor((bytes / estimate) * 100));
    if (rate > 0 && bytes < estimate) eta = Math.ceil((estimate - bytes) / rate);
  }
  return { bytes, rate_bytes_per_second: Math.round(rate), eta_seconds: eta, percent };
}
