/**
 * The arithmetic under point-in-time planning, without servers: WAL segment names and
 * LSNs, the archive as a line of files (timeline switches, binlog numbering), and the
 * recovery window a line and its backups give (gaps, the backup a replay must start from).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ArchiveFile, Backup } from '../../src/catalog/schema.js';
import { formatLsn, parseLsn, parseSegmentName, segmentName, segmentOfLsn, segmentSizeOf } from '../../src/archive/postgres/wal.js';
import { archiveLine, contiguousFrom, describeMissing, missingAfter, replayStart } from '../../src/archive/sequence.js';
import { windowOf } from '../../src/archive/window.js';
import { parseRestorePoint, PitrRefusal } from '../../src/archive/pitr.js';
import { copyRestoreCommand } from '../../src/archive/postgres/server.js';
import { copyEncoding } from '../../src/archive/fetch.js';

const MB16 = 16 * 1024 * 1024;

function wal(name: string, last: string | null, extra: Partial<ArchiveFile> = {}): ArchiveFile {
  return {
    id: name,
    organization_id: 'o',
    database_id: 'd',
    branch_id: 'b',
    kind: 'wal',
    name,
    timeline: parseInt(name.slice(0, 8), 16),
    start_lsn: null,
    end_lsn: null,
    first_event_at: last,
    last_event_at: last,
    raw_size: MB16,
    size: 1000,
    state: 'success',
    created_at: '2025-01-01T00:00:00.000Z',
    deleted_at: null,
    ...extra,
  };
}

function base(id: string, lsn: string, stop: string, stopTime: string): Backup {
  return {
    id,
    method: 'base',
    state: 'success',
    sha256: 'x'.repeat(64),
    deleted_at: null,
    completed_at: stopTime,
    updated_at: stopTime,
    recovery_start: JSON.stringify({ timeline: 1, lsn, stop_lsn: stop, stop_timeline: 1, stop_time: stopTime }),
  } as unknown as Backup;
}

test('segment names and LSNs', () => {
  assert.equal(parseLsn('16/B374D848'), 0x16b374d848n);
  assert.equal(formatLsn(0x16b374d848n), '16/B374D848');
  assert.equal(segmentOfLsn(1, '0/3000060'), '000000010000000000000003');
  assert.equal(segmentOfLsn(2, '1/FF000000'), '0000000200000001000000FF');
  const { timeline, segno } = parseSegmentName('0000000200000001000000FF');
  assert.equal(timeline, 2);
  assert.equal(segmentName(2, segno + 1n), '000000020000000200000000');
  // 64 MiB segments: 64 per log id.
  assert.equal(segmentOfLsn(1, '0/C000000', 64 * 1024 * 1024), '000000010000000000000003');
  assert.equal(segmentSizeOf([{ start_lsn: '0/4000000', end_lsn: '0/8000000' }]), 64 * 1024 * 1024);
  assert.equal(segmentSizeOf([{ start_lsn: null, end_lsn: null }]), MB16);
  assert.throws(() => parseLsn('nope'));
});

test('the line follows a timeline switch and names what is missing', () => {
  const line = archiveLine('wal', [
    wal('000000010000000000000002', null),
    wal('000000010000000000000003', '2025-01-01T10:00:00.000Z'),
    wal('000000020000000000000004', '2025-01-01T11:00:00.000Z'),
    wal('00000002.history', null),
    wal('000000020000000000000007', '2025-01-01T12:00:00.000Z'),
  ]);
  assert.deepEqual(line.extras.map((f) => f.name), ['00000002.history']);
  const run = contiguousFrom(line, 2n);
  assert.deepEqual(run.map((f) => f.file.name), ['000000010000000000000002', '000000010000000000000003', '000000020000000000000004']);
  const hole = missingAfter(line, 4n, run[2].file);
  assert.deepEqual(hole.names, ['000000020000000000000005', '000000020000000000000006']);
  assert.equal(describeMissing(hole.names, hole.total), '000000020000000000000005, 000000020000000000000006');
  assert.deepEqual(missingAfter(line, 7n, null).names, [], 'the end of the line is no gap');
});

test('binlogs are a line too', () => {
  const f = (name: string) => ({ ...wal('000000010000000000000001', null), id: name, kind: 'binlog' as const, name, timeline: null });
  const line = archiveLine('binlog', [f('mariadb-bin.000009'), f('mariadb-bin.000010'), f('mariadb-bin.000012')]);
  assert.deepEqual(contiguousFrom(line, 9n).map((x) => x.file.name), ['mariadb-bin.000009', 'mariadb-bin.000010']);
  assert.deepEqual(missingAfter(line, 10n, null).names, ['mariadb-bin.000011']);
});

test('the window: from the oldest usable base backup to the last commit it reaches, with the gaps', () => {
  const files = [
    wal('000000010000000000000002', '2025-01-01T09:00:00.000Z'),
    wal('000000010000000000000003', '2025-01-01T10:00:00.000Z'),
    // 4 is missing
    wal('000000010000000000000005', '2025-01-01T12:00:00.000Z'),
    wal('000000010000000000000006', '2025-01-01T13:00:00.000Z'),
  ];
  const line = archiveLine('wal', files);
  const first = replayStart(line, base('b1', '0/2000028', '0/2000100', '2025-01-01T08:30:00.000Z'))!;
  const second = replayStart(line, base('b2', '0/5000028', '0/5000100', '2025-01-01T11:30:00.000Z'))!;
  assert.equal(first.start, 2n);
  assert.equal(first.stop, 2n);
  const w = windowOf(line, [first, second]);
  assert.equal(w.earliest, '2025-01-01T08:30:00.000Z');
  assert.equal(w.latest, '2025-01-01T13:00:00.000Z');
  assert.deepEqual(w.gaps, [{ after: '2025-01-01T10:00:00.000Z', before: '2025-01-01T11:30:00.000Z', missing: ['000000010000000000000004'] }]);
  // Without the second base backup nothing after the gap is restorable.
  const only = windowOf(line, [first]);
  assert.equal(only.latest, '2025-01-01T10:00:00.000Z');
  assert.deepEqual(only.gaps, [{ after: '2025-01-01T10:00:00.000Z', before: null, missing: ['000000010000000000000004'] }]);
  // A base backup whose end is not archived yet is not consistent: no window from it.
  const unfinished = replayStart(line, base('b3', '0/6000028', '0/7000100', '2025-01-01T13:30:00.000Z'))!;
  assert.deepEqual(windowOf(line, [unfinished]), { earliest: null, latest: null, gaps: [] });
  // A logical dump is no start for WAL.
  assert.equal(replayStart(line, { ...base('d', '0/2000028', '0/2000100', '2025-01-01T08:30:00.000Z'), method: 'logical' } as Backup), null);
});

test('restore points: ISO times with a zone, or latest', () => {
  assert.equal(parseRestorePoint('latest'), 'latest');
  assert.equal(parseRestorePoint('2025-05-01T13:45:00Z'), '2025-05-01T13:45:00.000Z');
  assert.equal(parseRestorePoint('2025-05-01T15:45:00.123456789+02:00'), '2025-05-01T13:45:00.123Z');
  for (const bad of ['2025-05-01 13:45', 'yesterday', '2025-13-45T99:00:00Z', '']) {
    assert.throws(() => parseRestorePoint(bad), (e: unknown) => e instanceof PitrRefusal && e.status === 422, bad);
  }
});

test('restore_command quotes the folder for the shell and for PostgreSQL', () => {
  assert.equal(copyRestoreCommand('/var/lib/strongbox/pitr/abc/wal'), `cp '/var/lib/strongbox/pitr/abc/wal/%f' "%p"`);
  assert.equal(copyRestoreCommand(`/srv/it's 100%/wal`), `cp '/srv/it'\\''s 100%%/wal/%f' "%p"`);
});

test('a stored copy says how it is encoded', () => {
  assert.deepEqual(copyEncoding('a/archive/wal/00000001/000000010000000000000003.zst.age'), { compression: 'zstd', encrypted: true });
  assert.deepEqual(copyEncoding('a/archive/binlog/b.000001.gz'), { compression: 'gzip', encrypted: false });
  assert.deepEqual(copyEncoding('a/archive/binlog/b.000001'), { compression: 'none', encrypted: false });
});
