/** StatementSizer: the largest statement of a mysqldump stream, whatever the chunking. */
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { StatementSizer } from '../../src/pipeline/statementsize.js';
import { chunked, collector } from './helpers.js';

async function measure(dump: Buffer, chunkSize: number): Promise<{ largest: number; out: Buffer }> {
  const sizer = new StatementSizer();
  const out = collector();
  await pipeline(chunked(dump, chunkSize), sizer, out);
  return { largest: sizer.largest, out: out.data() };
}

describe('StatementSizer', () => {
  // A multi-line INSERT as mariadb-dump 10.11 writes it (a row per line), a large row
  // whose data holds escaped newlines and semicolons, comments and blank lines between.
  const big = `INSERT INTO \`b\` VALUES\n(1,'${'x;\\n'.repeat(5000)}'),\n(2,'end;');\n`;
  const dump = Buffer.from(
    [
      '-- MariaDB dump 10.19\n',
      '--\n-- Table structure for table `b`\n--\n\n',
      'DROP TABLE IF EXISTS `b`;\n',
      'CREATE TABLE `b` (\n  `id` int(11) NOT NULL,\n  `v` text\n) ENGINE=InnoDB;\n',
      '--\n-- Dumping data for table `b`\n--\n',
      big,
      'INSERT INTO `b` VALUES\n(3,\'small\');  \r\n',
      '-- Dump completed\n',
    ].join(''),
  );

  test('the largest statement spans its lines, not the comments before it; bytes pass unchanged', async () => {
    const { largest, out } = await measure(dump, 64 * 1024);
    assert.equal(largest, Buffer.byteLength(big));
    assert.ok(out.equals(dump));
  });

  test('any chunking gives the same answer', async () => {
    for (const size of [1, 2, 3, 7, 64, 1000, 4099]) assert.equal((await measure(dump, size)).largest, Buffer.byteLength(big), `chunks of ${size}`);
  });

  test('a dump that ends without a newline counts its last statement', async () => {
    const text = Buffer.from('SELECT 1;\nINSERT INTO t VALUES (1,2,3,4,5,6)');
    assert.equal((await measure(text, 5)).largest, 'INSERT INTO t VALUES (1,2,3,4,5,6)'.length);
  });
});
