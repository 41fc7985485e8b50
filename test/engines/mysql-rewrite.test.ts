/**
 * The rewrite of a MariaDB dump on its way into a database of another name: references
 * to the source database, table locks, DEFINERs, sequence rounds; row data untouched.
 */
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { MysqlDumpRewriter, type DumpRewriteOptions } from '../../src/engines/mysql/rewrite.js';
import { chunked, collector } from '../pipeline/helpers.js';

async function rewrite(input: Buffer, options: Partial<DumpRewriteOptions> = {}, chunkSize = 64 * 1024): Promise<string> {
  const out = collector();
  await pipeline(chunked(input, chunkSize), new MysqlDumpRewriter({ sourceDatabase: 'src', targetDatabase: 'dst', stripDefiners: true, ...options }), out);
  return out.data().toString('latin1');
}

const DUMP = [
  "/*!40101 SET NAMES utf8mb4 */;\n",
  "DO SETVAL(`seq_cycle`, -4, 0);\n",
  "DO SETVAL(`seq_ids`, 1030, 0);\n",
  "CREATE TABLE `with_seq` (\n",
  "  `id` bigint(20) NOT NULL DEFAULT nextval(`src`.`seq_ids`),\n",
  "  `w` int(11) DEFAULT lastval(`src`.`seq_ids`),\n",
  "  `other` int(11) DEFAULT nextval(`srcx`.`s`),\n",
  "  PRIMARY KEY (`id`)\n",
  ") ENGINE=InnoDB;\n",
  "LOCK TABLES `with_seq` WRITE;\n",
  "INSERT INTO `with_seq` VALUES\n",
  "(1000,'nextval(`src`.`seq_ids`) DEFINER=`a`@`b` ALTER DATABASE `src`'),\n",
  "(1010,'CREATE TABLE `x` (');\n",
  "UNLOCK TABLES;\n",
  "ALTER DATABASE `src` CHARACTER SET latin1 COLLATE latin1_german1_ci ;\n",
  "CREATE DEFINER=`root`@`127.0.0.1` FUNCTION `f`() RETURNS int(11)\n",
  "RETURN 1\n",
  "/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`%`*/ /*!50003 TRIGGER t BEFORE INSERT ON w FOR EACH ROW SET NEW.w = 5 */;;\n",
  "/*!50106 CREATE*/ /*!50117 DEFINER=`o``dd`@`h`*/ /*!50106 EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT 1 */ ;;\n",
  "/*!50013 DEFINER=`e_own`@`%` SQL SECURITY DEFINER */\n",
  "/*!50001 VIEW `v` AS select `src`.`parents`.`id` AS `id`,nextval(`src`.`seq_ids`) AS `n`,'`src`.' AS `s` from `parents` */;\n",
].join('');

describe('MysqlDumpRewriter', () => {
  test('rewrites references to the source in DDL only, drops table locks and DEFINERs, adds sequence rounds', async () => {
    const out = await rewrite(Buffer.from(DUMP, 'latin1'), { sequenceRounds: { seq_cycle: 3 } });
    assert.match(out, /DEFAULT nextval\(`dst`\.`seq_ids`\),\n/);
    assert.match(out, /DEFAULT lastval\(`dst`\.`seq_ids`\),\n/);
    assert.match(out, /nextval\(`srcx`\.`s`\)/, 'another database is not the source');
    assert.ok(!/LOCK TABLES/.test(out), 'no table locks');
    assert.ok(out.includes("(1000,'nextval(`src`.`seq_ids`) DEFINER=`a`@`b` ALTER DATABASE `src`'),\n"), 'row data is untouched');
    assert.ok(out.includes("(1010,'CREATE TABLE `x` (');\n"));
    assert.match(out, /^ALTER DATABASE `dst` CHARACTER SET latin1/m);
    assert.match(out, /^CREATE FUNCTION `f`\(\)/m);
    assert.match(out, /^\/\*!50003 CREATE\*\/ \/\*!50017 \*\/ \/\*!50003 TRIGGER t /m);
    assert.match(out, /^\/\*!50106 CREATE\*\/ \/\*!50117 \*\/ \/\*!50106 EVENT `e`/m);
    assert.match(out, /^\/\*!50013 SQL SECURITY DEFINER \*\/$/m);
    assert.ok(out.includes('VIEW `v` AS select `dst`.`parents`.`id` AS `id`,nextval(`dst`.`seq_ids`) AS `n`'), out);
    assert.match(out, /^DO SETVAL\(`seq_cycle`, -4, 0, 3\);$/m);
    assert.match(out, /^DO SETVAL\(`seq_ids`, 1030, 0\);$/m, 'a sequence that never wrapped is left alone');
  });

  test('keeps DEFINERs when ownership is preserved; without a source name, renames nothing', async () => {
    const out = await rewrite(Buffer.from(DUMP, 'latin1'), { stripDefiners: false, sourceDatabase: null });
    assert.ok(out.includes('CREATE DEFINER=`root`@`127.0.0.1` FUNCTION'));
    assert.ok(out.includes('/*!50013 DEFINER=`e_own`@`%` SQL SECURITY DEFINER */'));
    assert.ok(out.includes('nextval(`src`.`seq_ids`),\n'));
    assert.ok(!/LOCK TABLES/.test(out), 'table locks go in any case');
  });

  test('any chunking gives the same output', async () => {
    const whole = await rewrite(Buffer.from(DUMP, 'latin1'), { sequenceRounds: { seq_cycle: 3 } });
    for (const size of [1, 2, 5, 13, 100]) assert.equal(await rewrite(Buffer.from(DUMP, 'latin1'), { sequenceRounds: { seq_cycle: 3 } }, size), whole, `chunks of ${size}`);
  });

  test('a row line of 20 MB streams through unbuffered and unchanged, bytes of every value included', async () => {
    const row = Buffer.concat([Buffer.from("(1,'"), Buffer.alloc(20 << 20, 0x41), Buffer.from("');\n")]);
    const input = Buffer.concat([Buffer.from('INSERT INTO `b` VALUES\n'), row, Buffer.from('CREATE TABLE `t` (\n  `a` int DEFAULT nextval(`src`.`s`)\n);\n')]);
    const rewriter = new MysqlDumpRewriter({ sourceDatabase: 'src', targetDatabase: 'dst', stripDefiners: true });
    let largestPush = 0;
    const out = collector();
    rewriter.on('data', (c: Buffer) => (largestPush = Math.max(largestPush, c.length)));
    await pipeline(chunked(input, 64 * 1024), rewriter, out);
    assert.ok(largestPush <= 64 * 1024, `pushed ${largestPush} bytes at once: the row was buffered`);
    const text = out.data();
    assert.ok(text.subarray(0, 23 + row.length).equals(input.subarray(0, 23 + row.length)));
    assert.match(text.subarray(23 + row.length).toString(), /nextval\(`dst`\.`s`\)/);
  });
});
