import assert from 'node:assert/strict';
import type { RowDataPacket } from 'mysql2/promise';
import { mysql } from '../../src/engines/index.js';
import { createMysqlFixture, mysqlIdent, mysqlUrl, withMysqlConnection } from '../helpers/databases.js';
import { engineSuite } from './suite.js';

engineSuite({
  kind: 'mysql',
  engine: mysql,
  dumpTool: 'mariadb-dump',
  passwordVariable: 'MYSQL_PWD',
  createFixture: createMysqlFixture,

  async createUser(user, password, db) {
    await withMysqlConnection(mysqlUrl('mysql'), async (c) => {
      await c.query(`CREATE USER ?@'%' IDENTIFIED BY ?`, [user, password]);
      await c.query(`GRANT ALL PRIVILEGES ON ${mysqlIdent(db)}.* TO ?@'%'`, [user]);
    });
  },

  async dropUser(user) {
    await withMysqlConnection(mysqlUrl('mysql'), (c) => c.query(`DROP USER IF EXISTS ?@'%'`, [user]));
  },

  // root may only log in from here without a password: any password is wrong.
  refusedLogin: (password) => ({ user: 'root', password }),

  async checkRestored(url) {
    await withMysqlConnection(url, async (c) => {
      const [value] = await c.query<RowDataPacket[]>('SELECT item_value(3, 2.5) AS v');
      assert.equal(String(value[0].v), '7.5000');
      const [view] = await c.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM item_totals');
      assert.equal(Number(view[0].n), 17);
      // The trigger came back and works.
      await c.query(`INSERT INTO items (id, name, created_at) VALUES (100000, 'after restore', NOW())`);
      const [note] = await c.query<RowDataPacket[]>('SELECT note FROM items WHERE id = 100000');
      assert.equal(note[0].note, 'n/a');
    });
  },
});
