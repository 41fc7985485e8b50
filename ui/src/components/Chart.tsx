/**
 * A small line chart drawn as inline SVG (no chart library: a few hundred bytes instead of
 * a hundred kilobytes). Points are plotted by time; each has a tooltip, and the chart has a
 * text summary for screen readers. Colors come from the style sheet, so dark mode applies.
 */
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { formatTime } from '../format.js';

export interface ChartPoint {
  /** Time, in ms since the epoch. */
  x: number;
  y: number;
  /** What the tooltip says about this point (besides its value). */
  label: string;
}

const H = 180;
const PAD = { left: 72, right: 14, top: 12, bottom: 26 };

export function Chart({ title, points, format }: { title: string; points: ChartPoint[]; format: (v: number) => string }) {
  const id = `chart${useId()}`;
  // Drawn at the width it is shown at, so its labels stay 12 px on a phone as on a desktop.
  const box = useRef<HTMLElement>(null);
  const [W, setW] = useState(640);
  useEffect(() => {
    const el = box.current;
    if (!el || typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(() => setW(Math.max(240, Math.round(el.clientWidth))));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  if (points.length === 0) {
    return (
      <figure class="chart" ref={box}>
        <figcaption>{title}</figcaption>
        <p class="muted">No data in this period.</p>
      </figure>
    );
  }
  const xs = points.map((p) => p.x);
  const minX = Math.min(...xs);
  const maxX = Math.max(...xs);
  const maxY = Math.max(...points.map((p) => p.y)) || 1;
  const top = maxY * 1.1;
  const px = (x: number) => (maxX === minX ? (PAD.left + W - PAD.right) / 2 : PAD.left + ((x - minX) / (maxX - minX)) * (W - PAD.left - PAD.right));
  const py = (y: number) => H - PAD.bottom - (y / top) * (H - PAD.top - PAD.bottom);
  const line = points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ');
  const last = points[points.length - 1];
  const summary = `${points.length} points from ${formatTime(new Date(minX).toISOString())} to ${formatTime(new Date(maxX).toISOString())}; highest ${format(maxY)}, latest ${format(last.y)}.`;
  // Gridlines at 0, half and the highest value; one whose label reads like its neighbour's is dropped.
  const ticks = [0, maxY / 2, maxY].filter((t, i, all) => i === 0 || format(t) !== format(all[i - 1]));
  return (
    <figure class="chart" ref={box}>
      <figcaption id={`${id}-t`}>{title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={`${id}-t ${id}-d`} preserveAspectRatio="xMidYMid meet">
        <desc id={`${id}-d`}>{summary}</desc>
        {ticks.map((t) => (
          <g key={t}>
            <line class="chart-grid" x1={PAD.left} x2={W - PAD.right} y1={py(t)} y2={py(t)} />
            <text class="chart-label" x={PAD.left - 6} y={py(t) + 4} text-anchor="end">
              {format(t)}
            </text>
          </g>
        ))}
        <text class="chart-label" x={PAD.left} y={H - 6} text-anchor="start">
          {formatTime(new Date(minX).toISOString()).slice(0, 10)}
        </text>
        {maxX !== minX && (
          <text class="chart-label" x={W - PAD.right} y={H - 6} text-anchor="end">
            {formatTime(new Date(maxX).toISOString()).slice(0, 10)}
          </text>
        )}
        <polyline class="chart-line" points={line} />
        {points.map((p, i) => (
          <circle key={i} class="chart-dot" cx={px(p.x)} cy={py(p.y)} r={points.length > 120 ? 1.5 : 3}>
            <title>{`${p.label}: ${format(p.y)}`}</title>
          </circle>
        ))}
      </svg>
    </figure>
  );
}
