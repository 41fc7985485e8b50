/**
 * Progress of a running backup or restore on stderr (stdout stays for results, so
 * `ID=$(strongbox backup create ... --wait -q)` still shows it): a bar redrawn in place on
 * a terminal, plain lines at most every few seconds otherwise (CI logs stay readable).
 */
import { formatBytes, formatEta } from './output.js';

export interface ProgressSnapshot {
  state: string;
  /** Bytes done so far (what the bar measures). */
  done: number;
  /** Bytes expected in all; null when unknown (no bar, no percent). */
  total: number | null;
  /** 0..100 when known (the server's own estimate can differ from done/total). */
  percent?: number | null;
  rate: number;
  eta: number | null;
  /** What `done` counts, e.g. "read" (default "done"). */
  verb?: string;
  /** Extra text after the numbers, e.g. "2.1 MiB stored". */
  extra?: string;
  /** Shown instead of the numbers, e.g. "waiting for a worker…". */
  note?: string;
}

/** How often a line is printed when stderr is not a terminal. */
const PLAIN_EVERY_MS = 5_000;

export class ProgressDisplay {
  private readonly tty: boolean;
  private lastPlain = 0;
  private lastLine = '';
  private lastState = '';
  private drawn = false;
  private printed = false;
  private readonly started = Date.now();

  /**
   * `quietFor`: when not on a terminal, print nothing for this long (and nothing at the end
   * if nothing was printed): a download that takes a second needs no progress in a log.
   */
  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly quietFor = 0,
  ) {
    this.tty = stream.isTTY === true && process.env.TERM !== 'dumb';
  }

  /** Show the latest snapshot. */
  update(p: ProgressSnapshot): void {
    if (this.tty) {
      const width = Math.max(40, (this.stream.columns || 80) - 1);
      const line = this.render(p, width);
      this.stream.write(`\r\x1b[K${line}`);
      this.drawn = true;
      return;
    }
    const line = this.text(p);
    const now = Date.now();
    if (now - this.started < this.quietFor) return;
    // A line when the state changed, or when something changed and enough time passed.
    if (line !== this.lastLine && (p.state !== this.lastState || now - this.lastPlain >= PLAIN_EVERY_MS)) {
      this.stream.write(`${line}\n`);
      this.lastPlain = now;
      this.lastLine = line;
      this.lastState = p.state;
      this.printed = true;
    }
  }

  /** The last snapshot, always printed, and the terminal's line ended. */
  finish(p?: ProgressSnapshot): void {
    if (p) {
      if (this.tty) this.update(p);
      else if (this.text(p) !== this.lastLine && (this.printed || this.quietFor === 0)) this.stream.write(`${this.text(p)}\n`);
    }
    this.clear();
  }

  /** End the line the bar is on (before printing anything else, e.g. on Ctrl-C). */
  clear(): void {
    if (this.tty && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }

  /** The plain one-line form: `running 41%  12.0 MiB of 29.3 MiB  2.0 MiB/s  ETA 8s`. */
  text(p: ProgressSnapshot): string {
    if (p.note) return `${p.state}  ${p.note}`;
    const pct = percentOf(p);
    const amount = `${formatBytes(p.done)}${p.total ? ` of ${formatBytes(p.total)}` : ''} ${p.verb ?? 'done'}`;
    const eta = active(p) ? `ETA ${formatEta(p.eta)}` : '';
    const rate = active(p) || p.rate > 0 ? `${formatBytes(p.rate)}/s` : '';
    return [`${p.state}${pct === null ? '' : ` ${pct}%`}`, amount, p.extra, rate, eta].filter(Boolean).join('  ');
  }

  /** The terminal form: the same numbers behind a bar that fills the rest of the width. */
  render(p: ProgressSnapshot, width: number): string {
    const pct = percentOf(p);
    if (p.note || pct === null) return this.text(p).slice(0, width);
    const numbers = [`${String(pct).padStart(3)}%`, p.total ? `${formatBytes(p.done)} / ${formatBytes(p.total)}` : formatBytes(p.done), p.extra, `${formatBytes(p.rate)}/s`, `ETA ${formatEta(p.eta)}`].filter(Boolean).join('  ');
    const label = p.state.padEnd(7);
    const barWidth = Math.max(10, Math.min(40, width - label.length - numbers.length - 5));
    const filled = Math.round((pct / 100) * barWidth);
    const bar = `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]`;
    return `${label} ${bar} ${numbers}`.slice(0, width);
  }
}

/** Still going: an ETA means something. */
function active(p: ProgressSnapshot): boolean {
  return p.state === 'running' || p.state === 'pending' || p.state === 'download';
}

function percentOf(p: ProgressSnapshot): number | null {
  if (p.percent !== undefined && p.percent !== null) return Math.max(0, Math.min(100, Math.floor(p.percent)));
  if (p.total && p.total > 0) return Math.min(100, Math.floor((p.done / p.total) * 100));
  return null;
}
