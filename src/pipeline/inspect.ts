/**
 * What a backup reads off the raw (uncompressed) dump as it passes: the byte count, the row
 * counts and content digests (rowcount/), the largest SQL statement (statementsize.ts) and
 * the binlog coordinates of a MariaDB dump (archive/mysql/coordinates.ts). The readers are
 * pass-through Transforms with synchronous callbacks; here they are driven directly, chunk
 * by chunk, so that one loop feeds them all without a stream hop per reader, and so that
 * they can run in a worker thread (inspect-worker.ts) on bytes the main thread never sees.
 */
import type { Transform } from 'node:stream';
import { DumpCoordinatesReader, type DumpCoordinates } from '../archive/mysql/coordinates.js';
import { rowCounterFor, type DumpContents, type RowCounter, type RowCountKind } from './rowcount/index.js';
import { StatementSizer } from './statementsize.js';

/** Which readers to run. Plain data, so that it can be sent to a worker thread. */
export interface InspectSpec {
  /** Count rows and digest contents of a dump of this kind (pg_dump -Fc -Z0, or mysqldump SQL). */
  rows?: RowCountKind;
  /** With `rows`: also the content digests (default true). */
  digests?: boolean;
  /** The largest SQL statement (MySQL dumps). */
  statements?: boolean;
  /** The binlog coordinates a mysqldump --master-data=2 dump carries. */
  coordinates?: boolean;
}

/** What the readers found once the stream ended. Plain data (structured-clonable). */
export interface Inspection {
  /** Every raw byte that passed. */
  rawBytes: number;
  /** Rows per table, or null (see `reason`) when not asked for or the dump could not be read. */
  counts: Record<string, number> | null;
  contents: DumpContents | null;
  /** Why `counts` is null when rows were asked for; null otherwise. */
  reason: string | null;
  /** Bytes of the largest statement; null when not asked for. */
  largestStatement: number | null;
  /** Null when not asked for, or when the dump carries none (log_bin off). */
  coordinates: DumpCoordinates | null;
}

/** Feed a synchronous pass-through Transform directly: it must call back at once, with the chunk unchanged. */
function drive(stage: Transform): { update(chunk: Buffer): void; end(): void } {
  const check = (err?: Error | null): void => {
    if (err) throw err;
  };
  return {
    update: (chunk) => stage._transform(chunk, 'buffer' as BufferEncoding, check),
    // Transform.prototype has no _flush: a reader that needs no end has none.
    end: () => (typeof stage._flush === 'function' ? stage._flush(check) : undefined),
  };
}

/**
 * The readers of `spec` over one stream. `update` every chunk in order (it may reuse the
 * buffer afterwards: the readers copy what they keep), then `end` once.
 */
export class RawInspector {
  #bytes = 0;
  readonly #counter: RowCounter | null;
  readonly #sizer: StatementSizer | null;
  readonly #coordinates: DumpCoordinatesReader | null;
  readonly #stages: Array<{ update(chunk: Buffer): void; end(): void }> = [];

  /** `clock` stamps when the dump's position comment went by (DumpCoordinates.consistent_at). */
  constructor(spec: InspectSpec, clock: () => Date = () => new Date()) {
    this.#counter = spec.rows ? rowCounterFor(spec.rows, { digests: spec.digests !== false }) : null;
    this.#sizer = spec.statements ? new StatementSizer() : null;
    this.#coordinates = spec.coordinates ? new DumpCoordinatesReader(clock) : null;
    for (const s of [this.#counter?.stream, this.#sizer, this.#coordinates]) if (s) this.#stages.push(drive(s));
  }

  /** Raw bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  update(chunk: Buffer): void {
    this.#bytes += chunk.length;
    for (const s of this.#stages) s.update(chunk);
  }

  end(): Inspection {
    for (const s of this.#stages) s.end();
    return {
      rawBytes: this.#bytes,
      counts: this.#counter?.counts() ?? null,
      contents: this.#counter?.contents() ?? null,
      reason: this.#counter?.reason() ?? null,
      largestStatement: this.#sizer?.largest ?? null,
      coordinates: this.#coordinates?.coordinates() ?? null,
    };
  }
}
