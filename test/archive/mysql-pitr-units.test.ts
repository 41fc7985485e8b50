/**
 * The pieces of MariaDB point-in-time recovery that need no server: the coordinates a dump
 * carries, the binlog name sequence, what `--stop-datetime` a target time becomes, the
 * binlog chain check, and the replay filter (GTIDs dropped, statements naming the source
 * database refused, row events passed through).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DumpCoordinatesReader, parseDumpCoordinates } from '../../src/archive/mysql/coordinates.js';
import { binlogNameAfter, eventTime } from '../../src/archive/mysql/binlog.js';
import { checkChain, stopDatetime } from '../../src/archive/mysql/pitr.js';
import { BinlogReplayFilter, namesDatabase } from '../../src/archive/mysql/replay.js';

test('dump coordinates: the position from the header, the GTID from the tail; none without log_bin', async () => {
  const head = "-- MariaDB dump 10.19\n--\n-- CHANGE MASTER TO MASTER_LOG_FILE='mariadb-bin.000012', MASTER_LOG_POS=3456;\n\nCREATE TABLE t (id int);\n";
  const tail = "INSERT INTO t VALUES (1);\n-- Preferably use GTID to start replication from GTID position:\n\n-- SET GLOBAL gtid_slave_pos='0-1-42';\n-- Dump completed\n";
  assert.deepEqual(parseDumpCoordinates(head, tail), { file: 'mariadb-bin.000012', position: 3456, gtid: '0-1-42' });
  assert.equal(parseDumpCoordinates('-- MariaDB dump\nCREATE TABLE t (id int);\n', ''), null);
  // MySQL 8.0.26+ mysqldump --source-data.
  assert.deepEqual(parseDumpCoordinates("-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000002', SOURCE_LOG_POS=157;\n", ''), { file: 'binlog.000002', position: 157, gtid: null });

  // Through the stream, with the GTID far from the header and split across chunks.
  const reader = new DumpCoordinatesReader(() => new Date('2025-01-02T03:04:05.678Z'));
  const filler = Buffer.alloc(300_000, 'x');
  const chunks = [Buffer.from(head), filler, Buffer.from(tail.slice(0, 70)), Buffer.from(tail.slice(70))];
  let out = 0;
  await pipeline(Readable.from(chunks), reader, async function* (src) {
    for await (const c of src) out += (c as Buffer).length;
  });
  assert.equal(out, chunks.reduce((n, c) => n + c.length, 0));
  assert.deepEqual(reader.coordinates(), { file: 'mariadb-bin.000012', position: 3456, gtid: '0-1-42', consistent_at: '2025-01-02T03:04:05.678Z' });
});

test('binlog names: the next one keeps the width and grows past it; event times are read as UTC', () => {
  assert.equal(binlogNameAfter('binlog.000009'), 'binlog.000010');
  assert.equal(binlogNameAfter('my.bin.999999'), 'my.bin.1000000');
  assert.equal(eventTime('#261130  2:24:29 server id 1  end_log_pos 1202 CRC32 0xc40d8727 \tGTID 0-1-6 trans')?.toISOString(), '2026-11-30T02:24:29.000Z');
  assert.equal(eventTime('#700101  0:00:00 server id 1  end_log_pos 0 \tRotate to binlog.000002'), null);
  assert.equal(eventTime('# at 1202'), null);
});

test('restore to T: the stop is the second after T, so what the binlog dates in T\'s second is replayed', () => {
  assert.equal(stopDatetime('2025-03-04T05:06:07.000Z'), '2025-03-04 05:06:08');
  assert.equal(stopDatetime('2025-03-04T05:06:07.999Z'), '2025-03-04 05:06:08');
  assert.equal(stopDatetime('2025-12-31T23:59:59.500Z'), '2026-01-01 00:00:00');
});

test('the binlog chain starts at the dump\'s file and skips no number', () => {
  checkChain('b.000003', ['b.000003', 'b.000004', 'b.000005']);
  assert.throws(() => checkChain('b.000003', ['b.000003', 'b.000005']), /b\.000004 is missing from the archive/);
  assert.throws(() => checkChain('b.000003', ['b.000004']), /b\.000003 is missing/);
  assert.throws(() => checkChain('b.000003', []), /b\.000003, where the dump's position is, is not in the archive/);
});

test('namesDatabase: qualified names and DATABASE statements, not strings, comments or other names', () => {
  for (const sql of ['ALTER TABLE shop.t ADD c INT', 'alter table `shop`.`t` add c int', 'DROP DATABASE shop', 'drop schema if exists `shop`', 'CREATE TABLE x AS SELECT * FROM Shop . t', '/*!50001 CREATE VIEW v AS SELECT `shop`.`t`.`id` FROM t */']) {
    assert.equal(namesDatabase(sql, 'shop'), true, sql);
  }
  for (const sql of ["INSERT INTO t VALUES ('shop.t')", 'CREATE TABLE shop (i INT)', 'ALTER TABLE t ADD shop INT -- shop.t', 'CREATE TABLE t (c INT COMMENT "shop.x")', 'ALTER TABLE shopping.t ADD c INT', 'ALTER TABLE t /* shop.t */ ADD c INT']) {
    assert.equal(namesDatabase(sql, 'shop'), false, sql);
  }
});

const OUTPUT = [
  '/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=1*/;',
  'DELIMITER /*!*/;',
  '# at 379',
  '#261130  2:26:07 server id 1  end_log_pos 421 CRC32 0xd57df5f2 \tGTID 0-1-8 ddl',
  '/*M!100101 SET @@session.skip_parallel_replication=0*//*!*/;',
  '/*M!100001 SET @@session.gtid_domain_id=0*//*!*/;',
  '/*M!100001 SET @@session.server_id=1*//*!*/;',
  '/*M!100001 SET @@session.gtid_seq_no=8*//*!*/;',
  '# at 421',
  'use `shop_new`/*!*/;',
  'SET TIMESTAMP=1796005567/*!*/;',
  'create table t2(x int)',
  '/*!*/;',
  '# at 697',
  "BINLOG '",
  'v+clZRMBAAAALAAAAMUCAAAAABIAAAAAAAEABHNob3AAAXQAAgP8AQIC',
  "'/*!*/;",
  'COMMIT/*!*/;',
  '# at 900',
  'ALTER TABLE',
  '  shop.t2 ADD y INT',
  '/*!*/;',
  'DELIMITER ;',
].join('\n') + '\n';

async function filtered(text: string, chunk: number): Promise<{ out: string; error: Error | null }> {
  const parts: Buffer[] = [];
  for (let i = 0; i < text.length; i += chunk) parts.push(Buffer.from(text.slice(i, i + chunk)));
  const out: Buffer[] = [];
  try {
    await pipeline(Readable.from(parts), new BinlogReplayFilter('shop'), async function* (src) {
      for await (const c of src) out.push(c as Buffer);
    });
    return { out: Buffer.concat(out).toString(), error: null };
  } catch (e) {
    return { out: Buffer.concat(out).toString(), error: e as Error };
  }
}

test('the replay filter drops GTID settings, passes row events and refuses a statement naming the source, holding it back', async () => {
  for (const chunk of [7, 64, 1 << 16]) {
    const { out, error } = await filtered(OUTPUT, chunk);
    assert.match(error?.message ?? '', /names the source database "shop" explicitly \(at position 900\): ALTER TABLE shop\.t2 ADD y INT/);
    // Not a byte of the refused statement reached the client.
    assert.doesNotMatch(out, /ALTER TABLE/);
  }
  const fine = OUTPUT.replace('  shop.t2 ADD y INT', '  t2 ADD y INT');
  const { out, error } = await filtered(fine, 13);
  assert.equal(error, null);
  assert.doesNotMatch(out, /gtid_seq_no|gtid_domain_id|server_id=/);
  assert.match(out, /skip_parallel_replication/);
  assert.match(out, /create table t2\(x int\)\n\/\*!\*\/;/);
  assert.match(out, /v\+clZRMBAAAALAAAAMUCAAAAABIAAAAAAAEABHNob3AAAXQAAgP8AQIC/);
  assert.equal(out, fine.split('\n').filter((l) => !/gtid_seq_no|gtid_domain_id|server_id=/.test(l)).join('\n'));
});
