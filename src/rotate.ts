/**
 * Key rotation: re-encrypt every secret in the catalog (connection URLs, destination
 * configurations, sealed job secrets, notification secrets) under a new key, in one transaction.
 *
 * With the key file: the new key is written to `secret.key.new` first, the catalog is
 * re-encrypted, then the new key replaces `secret.key`. A crash at any point leaves every
 * secret readable (loadSecretBox accepts both keys while `secret.key.new` exists) and a
 * second run finishes the job. With STRONGBOX_SECRET_KEY, the new key comes from
 * STRONGBOX_NEW_SECRET_KEY and you change the variable afterwards.
 *
 * The catalog's key fingerprint changes in the same transaction, so a process still on the
 * old key refuses to start. Processes already running hold the old key in memory: stop them
 * all first (`strongbox secrets rotate-key` takes the catalog to itself and says so).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { AppContext } from './context.js';
import { keyFile, secretBox } from './secrets.js';
import { putSetting, SECRET_KEY_FINGERPRINT } from './catalog/settings.js';

export async function rotateSecretKey(ctx: AppContext, newHexKey: string | null): Promise<{ secrets: number }> {
  const file = keyFile(ctx.config.dataDir);
  let hex = newHexKey;
  if (!ctx.config.secretKey) {
    // Reuse a pending key from an interrupted rotation: secrets may already be under it.
    if (fs.existsSync(`${file}.new`)) hex = fs.readFileSync(`${file}.new`, 'utf8').trim();
    else {
      hex ??= crypto.randomBytes(32).toString('hex');
      const fd = fs.openSync(`${file}.new`, 'wx', 0o600);
      fs.writeSync(fd, hex + '\n');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    }
  } else if (!hex) throw new Error('STRONGBOX_SECRET_KEY is set: give the new key in STRONGBOX_NEW_SECRET_KEY (64 hex characters)');
  if (!/^[0-9a-fA-F]{64}$/.test(hex!)) throw new Error('the new key must be 64 hex characters');
  const next = secretBox(Buffer.from(hex!, 'hex'));
  const reseal = (sealed: string) => next.seal(ctx.secrets.open(sealed));
  let count = 0;
  await ctx.db.transaction().execute(async (trx) => {
    for (const b of await trx.selectFrom('branches').select(['id', 'connection_url_enc']).where('connection_url_enc', 'is not', null).execute()) {
      await trx.updateTable('branches').set({ connection_url_enc: reseal(b.connection_url_enc!) }).where('id', '=', b.id).execute();
      count++;
    }
    for (const d of await trx.selectFrom('storage_destinations').select(['id', 'config_enc']).execute()) {
      await trx.updateTable('storage_destinations').set({ config_enc: reseal(d.config_enc) }).where('id', '=', d.id).execute();
      count++;
    }
    for (const j of await trx.selectFrom('jobs').select(['id', 'secret_enc']).where('secret_enc', 'is not', null).execute()) {
      await trx.updateTable('jobs').set({ secret_enc: reseal(j.secret_enc!) }).where('id', '=', j.id).execute();
      count++;
    }
    // Notification secrets: webhook signing secrets, channel tokens and passwords.
    for (const w of await trx.selectFrom('webhooks').select(['id', 'secret_enc']).execute()) {
      await trx.updateTable('webhooks').set({ secret_enc: reseal(w.secret_enc) }).where('id', '=', w.id).execute();
      count++;
    }
    for (const c of await trx.selectFrom('notification_channels').select(['id', 'secrets_enc']).execute()) {
      await trx.updateTable('notification_channels').set({ secrets_enc: reseal(c.secrets_enc) }).where('id', '=', c.id).execute();
      count++;
    }
    // With the secrets, in the same transaction: from now on a process with the old key refuses to start.
    await putSetting(trx, SECRET_KEY_FINGERPRINT, next.fingerprint, ctx.clock());
  });
  if (!ctx.config.secretKey) fs.renameSync(`${file}.new`, file);
  return { secrets: count };
}
