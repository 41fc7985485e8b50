/**
 * Reading a Prometheus text-format scrape (format 0.0.4) back into samples, for the metrics
 * tests: written here from the format's grammar, not with the library that produced it.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  text: string;
  samples: Sample[];
  /** Metric family name → its TYPE (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>;
  /**
   * Sum of the samples named `name` whose labels include `labels` (undefined when none):
   * with every label given that is one series; with fewer, the total over the rest.
   */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** The samples named `name` whose labels include `labels`. */
  find(name: string, labels?: Record<string, string>): Sample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/y;

function unescape(v: string): string {
  return v.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Prometheus reads values with Go's ParseFloat: NaN and Inf in any case (prom-client writes "Nan"). */
function parseValue(v: string): number {
  if (/^\+?inf$/i.test(v)) return Infinity;
  if (/^-inf$/i.test(v)) return -Infinity;
  if (/^nan$/i.test(v)) return NaN;
  const n = Number(v);
  if (Number.isNaN(n)) throw new Error(`not a sample value: ${v}`);
  return n;
}

/** Parse a scrape; throws on a line that is neither a comment nor a well-formed sample. */
export function parseMetrics(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (m) types.set(m[1], m[2]);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`malformed sample line: ${line}`);
    const labels: Record<string, string> = {};
    const raw = m[2] ?? '';
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < raw.length) {
      const l = LABEL.exec(raw);
      if (!l) throw new Error(`malformed labels in: ${line}`);
      labels[l[1]] = unescape(l[2]);
    }
    samples.push({ name: m[1], labels, value: parseValue(m[3]) });
  }
  const find = (name: string, want: Record<string, string> = {}) => samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
  return {
    text,
    samples,
    types,
    find,
    value(name, want) {
      const hits = find(name, want);
      return hits.length ? hits.reduce((n, s) => n + s.value, 0) : undefined;
    },
  };
}

/**
 * The family a sample belongs to: histogram and summary samples carry a suffix
 * (`_bucket`, `_sum`, `_count`) on their family's name.
 */
export function familyOf(sampleName: string, types: Map<string, string>): string | undefined {
  if (types.has(sampleName)) return sampleName;
  const m = /^(.*)_(bucket|sum|count)$/.exec(sampleName);
  if (m && ['histogram', 'summary'].includes(types.get(m[1]) ?? '')) return m[1];
  return undefined;
}

/** GET a /metrics URL (with `authorization` when given); the status, Content-Type and parsed body. */
export async function scrape(url: string, authorization: string | null = null): Promise<{ status: number; contentType: string | null; body: string; metrics: Scrape | null }> {
  const res = await fetch(url, { headers: authorization === null ? {} : { authorization } });
  const body = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type'), body, metrics: res.status === 200 ? parseMetrics(body) : null };
}
