/**
 * Who backups are encrypted to, and where the keys to read them come from.
 *
 * Artifacts are encrypted with age to the organization's recipients (public keys), so the
 * server needs no private key to take backups. To restore, it needs an identity: the
 * file named by STRONGBOX_AGE_IDENTITY_FILE, the identity it generated for an
 * organization under `<data dir>/age/` (until you move it offline), or one given with a
 * restore request.
 *
 * Each generated identity file names its organization (a `# strongbox organization:` line),
 * and a restore only ever tries its own organization's: one organization's key must never
 * open another's backups, whatever reached its catalog.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { AppContext } from './context.js';
import type { Organization } from './catalog/schema.js';
import { nowIso } from './catalog/ids.js';
import { unnamedFile } from './unnamed-file.js';

const run = promisify(execFile);

/** An age X25519 recipient: "age1" + 58 bech32 characters. */
export const RECIPIENT_RE = /^age1[02-9ac-hj-np-z]{58}$/;
/** An age X25519 identity line. */
export const IDENTITY_RE = /^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/;

/** A short, stable name for a recipient: safe to show and to store in manifests. */
export function recipientFingerprint(recipient: string): string {
  return 'sha256:' + crypto.createHash('sha256').update(recipient).digest('hex').slice(0, 16);
}

export function organizationRecipients(org: Organization): string[] {
  return org.encryption_recipients ? (JSON.parse(org.encryption_recipients) as string[]) : [];
}

export function generatedIdentityFile(dataDir: string, org: Pick<Organization, 'id'>): string {
  return path.join(dataDir, 'age', `${org.id}.key`);
}

const ORGANIZATION_LINE = '# strongbox organization: ';

/** The organization an identity file was generated for, or null when it does not say. */
function identityOrganization(file: string): string | null {
  try {
    const line = fs.readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(ORGANIZATION_LINE));
    return line ? line.slice(ORGANIZATION_LINE.length).trim() : null;
  } catch {
    return null;
  }
}

/**
 * Name the organization in the identity files generated for these organizations before
 * the files carried it (age reads "#" lines as comments). Called at start; a file that
 * already names one is left alone.
 */
export function tagIdentityFiles(dataDir: string, orgs: Pick<Organization, 'id' | 'name'>[]): void {
  for (const org of orgs) {
    const file = generatedIdentityFile(dataDir, org);
    if (fs.existsSync(file) && identityOrganization(file) === null) fs.appendFileSync(file, `${ORGANIZATION_LINE}${org.name}\n`);
  }
}

/**
 * Give an organization its own identity (an `age-keygen` key file, mode 0600, under the
 * data dir) and make its public key the organization's recipient. Does nothing when the
 * organization already has recipients.
 */
export async function ensureOrganizationIdentity(ctx: AppContext, org: Organization): Promise<void> {
  if (organizationRecipients(org).length > 0) return;
  const file = generatedIdentityFile(ctx.config.dataDir, org);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  if (!fs.existsSync(file)) {
    const { stdout } = await run('age-keygen', [], { encoding: 'utf8' }).catch((e) => {
      throw new Error(`cannot generate an age identity (is the age package installed?): ${(e as Error).message.split('\n')[0]}`);
    });
    // 'wx': never overwrite an identity; two processes starting at once keep the first.
    try {
      fs.writeFileSync(file, `${ORGANIZATION_LINE}${org.name}\n${stdout}`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  const recipient = /# public key: (age1\S+)/.exec(fs.readFileSync(file, 'utf8'))?.[1];
  if (!recipient || !RECIPIENT_RE.test(recipient)) throw new Error(`${file} does not look like an age identity file`);
  await ctx.db
    .updateTable('organizations')
    .set({ encryption_recipients: JSON.stringify([recipient]), updated_at: nowIso(ctx.clock()) })
    .where('id', '=', org.id)
    .where('encryption_recipients', 'is', null)
    .execute();
}

/**
 * The identity files to try for an organization, in order: STRONGBOX_AGE_IDENTITY_FILE
 * (the operator's), then the identity generated for it (if still on this machine), then
 * identities this data dir generated earlier for an organization of the same name.
 */
export function identityFilesFor(ctx: AppContext, orgId: string): string[] {
  const files: string[] = [];
  if (ctx.config.ageIdentityFile) files.push(ctx.config.ageIdentityFile);
  const generated = generatedIdentityFile(ctx.config.dataDir, { id: orgId });
  if (!fs.existsSync(generated)) return files;
  files.push(generated);
  // Identities generated for this organization in a lost catalog (rebuilt from storage, it
  // has a new id but the same name): age picks whichever matches. Never another's.
  const name = identityOrganization(generated);
  if (name === null) return files;
  const dir = path.dirname(generated);
  for (const entry of fs.readdirSync(dir).sort()) {
    const file = path.join(dir, entry);
    if (entry.endsWith('.key') && file !== generated && identityOrganization(file) === name) files.push(file);
  }
  return files;
}

/**
 * An identity given with a request, for the one job that needs it: a file with no name
 * (unnamed-file.ts) that age opens through /proc, so the key is never on disk under a name
 * and nothing is left of it if this process is killed. The returned function closes it.
 */
export function temporaryIdentityFile(ctx: AppContext, identity: string): { file: string; remove: () => void } {
  const file = unnamedFile(path.join(ctx.config.dataDir, 'tmp'), identity.trim() + '\n');
  return { file: file.path, remove: file.close };
}
