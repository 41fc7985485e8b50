/**
 * A small closed-loop HTTP load generator for the API benchmarks (list-api.ts, scheduler.ts),
 * meant to run in a process of its own so that the server's event loop and the client's are
 * not the same one: `connections` keep-alive sockets, each sending its next request as soon
 * as the previous answer has been read whole, for `seconds`. With `everyMs` it is a probe
 * instead: one socket, one request every `everyMs` (no queueing of its own), so its latency
 * is what a lone client (a health check, a dashboard) sees while the others load the server.
 *
 *   node --import tsx bench/http-load.ts '{"base":"http://127.0.0.1:8080","paths":["/health"],"connections":10,"seconds":5}'
 *
 * Prints one JSON line: every request's [start (epoch ms), latency (ms), status], so the caller
 * can cut the samples to a window (the scheduler's pass) and compute its own percentiles.
 * `startAt` (epoch ms) lets several generators begin together.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

export interface LoadSpec {
  base: string;
  /** Requests cycle through these paths (one each, in turn, per connection). */
  paths: string[];
  headers?: Record<string, string>;
  connections: number;
  seconds: number;
  /** A probe: one request every this many ms on one connection (connections is ignored). */
  everyMs?: number;
  /** Begin at this epoch ms (so that a probe and a load start together). */
  startAt?: number;
  /** Give up on a request after this many ms (counted as status 0). */
  timeoutMs?: number;
}

export type Sample = [startEpochMs: number, latencyMs: number, status: number];

export interface LoadResult {
  samples: Sample[];
  /** Wall time the generator ran, in seconds. */
  seconds: number;
  bytes: number;
}

const epochNow = () => performance.timeOrigin + performance.now();

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const url = new URL(spec.base);
  const connections = spec.everyMs ? 1 : spec.connections;
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const samples: Sample[] = [];
  let bytes = 0;
  if (spec.startAt && spec.startAt > Date.now()) await new Promise((r) => setTimeout(r, spec.startAt! - Date.now()));
  const begin = epochNow();
  const end = begin + spec.seconds * 1000;

  const one = (path: string) =>
    new Promise<Sample>((resolve) => {
      const t0 = performance.now();
      const start = performance.timeOrigin + t0;
      const req = http.request(
        { host: url.hostname, port: url.port, path, method: 'GET', agent, headers: spec.headers ?? {}, timeout: spec.timeoutMs ?? 30_000 },
        (res) => {
          res.on('data', (c: Buffer) => (bytes += c.length));
          res.on('end', () => resolve([start, performance.now() - t0, res.statusCode ?? 0]));
          res.on('error', () => resolve([start, performance.now() - t0, 0]));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve([start, performance.now() - t0, 0]));
      req.end();
    });

  const worker = async (w: number) => {
    for (let i = w; epochNow() < end; i++) {
      const tick = performance.now();
      samples.push(await one(spec.paths[i % spec.paths.length]));
      if (spec.everyMs) {
        const wait = spec.everyMs - (performance.now() - tick);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, (_, w) => worker(w)));
  agent.destroy();
  return { samples, seconds: (epochNow() - begin) / 1000, bytes };
}

/** Percentile (nearest rank) of latencies, in ms. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export interface Stats {
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
  max: number;
}

export function statsOf(samples: Sample[], seconds: number): Stats {
  const ok = samples.filter((s) => s[2] === 200).map((s) => s[1]);
  return { requests: samples.length, errors: samples.length - ok.length, rps: ok.length / seconds, p50: percentile(ok, 50), p99: percentile(ok, 99), max: ok.length ? Math.max(...ok) : NaN };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const result = await runLoad(spec);
  process.stdout.write(JSON.stringify(result) + '\n');
}
