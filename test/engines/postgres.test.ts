import assert from 'node:assert/strict';
import { postgres } from '../../src/engines/index.js';
import { createPgFixture, pgIdent, pgUrl, uniqueName, withPgClient } from '../helpers/databases.js';
import { engineSuite } from './suite.js';

engineSuite({
  kind: 'postgresql',
  engine: postgres,
  dumpTool: 'pg_dump',
  passwordVariable: 'PGPASSWORD',
  createFixture: createPgFixture,

  async createUser(user, password, db) {
    await withPgClient(pgUrl('postgres'), async (c) => {
      // Utility statements take no bind parameters; escapeLiteral quotes the password.
      await c.query(`CREATE ROLE ${pgIdent(user)} LOGIN PASSWORD ${c.escapeLiteral(password)}`);
      await c.query(`GRANT CONNECT ON DATABASE ${pgIdent(db)} TO ${pgIdent(user)}`);
    });
    await withPgClient(pgUrl(db), (c) =>
      c.query(`GRANT USAGE ON SCHEMA public TO ${pgIdent(user)};
               GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${pgIdent(user)};
               GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO ${pgIdent(user)}`),
    );
  },

  async dropUser(user, db) {
    // DROP OWNED also revokes the grants (in `db` and on the database itself), without
    // which DROP ROLE refuses.
    await withPgClient(pgUrl(db), (c) => c.query(`DROP OWNED BY ${pgIdent(user)}`)).catch(() => undefined);
    await withPgClient(pgUrl('postgres'), (c) => c.query(`DROP ROLE IF EXISTS ${pgIdent(user)}`));
  },

  // This server trusts every connection from 127.0.0.1, so a wrong password alone would
  // be let in; an unknown role is refused, and the password must still not show.
  refusedLogin: (password) => ({ user: uniqueName('sbx_nobody'), password }),

  async checkRestored(url) {
    await withPgClient(url, async (c) => {
      // The identity sequence came back at its position, not at 1.
      const inserted = await c.query(`INSERT INTO events (label) VALUES ('after restore') RETURNING id::text AS id`);
      assert.equal(inserted.rows[0].id, '11');
      const value = await c.query(`SELECT item_value(3, 2.5)::text AS v`);
      assert.equal(value.rows[0].v, '7.5');
      const view = await c.query(`SELECT count(*)::int AS n FROM item_totals`);
      assert.equal(view.rows[0].n, 17);
      const guarded = await c.query(`INSERT INTO docs (id, body) VALUES (99, '{}') RETURNING raw::text AS raw`);
      assert.equal(guarded.rows[0].raw, '{}');
    });
  },
});
