#!/usr/bin/env node
/**
 * The `strongbox` command: `serve` runs the API and the job runner, `worker` only the
 * runner (scale-out), `token create` works offline on the catalog, and the rest are
 * API clients (`backup create|list|get|progress|download`, `database add`, `branch add`,
 * ...). Every command, its help and its options are declared in src/cli/specs.ts.
 */
// First: the heap's settings must be in place before the rest of the program loads.
import './heap.js';
import { ConfigError, loadConfig } from './config.js';
import fs from 'node:fs';
import { keyFile, keyFingerprint } from './secrets.js';
import type { CatalogLock } from './catalog/db.js';
import { getSetting, SECRET_KEY_FINGERPRINT } from './catalog/settings.js';
import { runCommandLine, CliError } from './cli.js';

/**
 * The server's modules, loaded by the server commands only (see server-modules.ts): a
 * client command starts without Fastify, the catalog and the engines. Import what a
 * server command needs from there, not at the top of this file.
 */
const serverModules = () => import('./server-modules.js');

/**
 * The lock each command holds on the catalog (see CatalogLock): on SQLite every command
 * that opens the catalog excludes every other, so the offline tools say what to do instead.
 */
const LOCKS = {
  serve: { mode: 'shared', command: 'serve' },
  worker: { mode: 'shared', command: 'worker' },
  tokenCreate: { mode: 'shared', command: 'token create', advice: 'stop the server first, or create the token through the API (POST /v1/organizations/{organization}/service-tokens)' },
  catalogRebuild: { mode: 'shared', command: 'catalog rebuild', advice: 'stop the server first, or rebuild through the API (POST /v1/organizations/{organization}/storage-destinations/{name}/rebuild)' },
  secretsRotate: { mode: 'exclusive', command: 'secrets rotate-key', advice: 'every process must be stopped while the key changes, and restarted with the new key' },
} satisfies Record<string, CatalogLock>;

async function serve(withHttp: boolean): Promise<void> {
  const { createContext, bootstrap, JobRunner, Scheduler, NotificationService, ArchiveManager, buildApp, startMetricsListener } = await serverModules();
  const config = loadConfig();
  const ctx = await createContext(config, { lock: withHttp ? LOCKS.serve : LOCKS.worker });
  const boot = await bootstrap(ctx);
  if (boot.created) {
    // Shown once: the secret is not stored anywhere but in this file (mode 0600) and as a hash.
    process.stdout.write(
      `\nStrongbox created an admin service token (shown once, also saved to ${boot.created.file}):\n\n` +
        `  Authorization: ${boot.created.id}:${boot.created.secret}\n\n`,
    );
  }
  const runner = new JobRunner(ctx);
  await runner.start();
  const scheduler = new Scheduler(ctx, config.schedulerIntervalSeconds * 1000);
  scheduler.start();
  // Any process may deliver notifications: deliveries are leased, so none is sent twice at once.
  const notifications = new NotificationService(ctx);
  notifications.start();
  // The WAL/binlog receivers of archived branches: each runs in one process at a time (a lease).
  const archives = new ArchiveManager(ctx);
  archives.start();
  const app = withHttp ? await buildApp(ctx) : null;
  if (app) {
    await app.listen({ host: config.host, port: config.port });
    ctx.log.info(`Strongbox listening on http://${config.host}:${config.port} (catalog: ${ctx.catalog.dialect}, data: ${config.dataDir})`);
  } else ctx.log.info(`Strongbox worker ${runner.workerId} started (catalog: ${ctx.catalog.dialect})`);
  // /metrics without a token, on its own address: the only way to scrape a worker (it has no API).
  const metrics = config.metricsListen ? await startMetricsListener(ctx, config.metricsListen) : null;
  if (metrics) ctx.log.info({ metrics: metrics.url }, `metrics served without authentication on ${metrics.url}/metrics`);

  // The runner's and the scheduler's timers are unref'd (a test can drop them), and a worker
  // has no HTTP server: without a handle of its own, a worker's event loop ran empty and it
  // exited 0 right after "started". It lives until a signal asks it to stop.
  const keepAlive = setInterval(() => {}, 1 << 30);
  let closing = false;
  process.on('beforeExit', () => {
    // Only reachable if the handle above is lost: never report success for a stop nobody asked for.
    if (closing) return;
    ctx.log.fatal('the process ran out of work to wait for without being asked to stop');
    process.exit(1);
  });
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    ctx.log.info({ signal }, 'shutting down');
    let code = 0;
    try {
      await app?.close();
      await metrics?.close();
      await scheduler.stop();
      await notifications.stop();
      await archives.stop();
      await runner.stop();
      await ctx.catalog.close();
    } catch (e) {
      ctx.log.error({ err: e }, 'shutdown failed');
      code = 1;
    }
    clearInterval(keepAlive);
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

/** Options as src/cli/specs.ts declares them (parsed and checked before any handler runs). */
type Options = Record<string, string | boolean | undefined>;

async function tokenCreate(values: Options): Promise<void> {
  const { createContext, bootstrap, findOrganizationByName, createToken, grantAccesses, ALL_ACCESSES } = await serverModules();
  const orgName = String(values.org ?? 'default');
  const config = loadConfig();
  const ctx = await createContext(config, { lock: LOCKS.tokenCreate });
  await bootstrap(ctx);
  const org = await findOrganizationByName(ctx.db, orgName);
  if (!org) throw new CliError(`no organization "${orgName}"`);
  const { token, secret } = await createToken(ctx.db, { organizationId: org.id, name: String(values.name ?? 'cli'), superuser: values.admin === true });
  await grantAccesses(ctx.db, token.id, ALL_ACCESSES, 'organization', org.id);
  await ctx.catalog.close();
  process.stdout.write(`${token.id}:${secret}\n`);
}

async function catalogRebuild(values: Options): Promise<void> {
  const { createContext, bootstrap, findOrganizationByName, rebuildCatalog } = await serverModules();
  const orgName = String(values.org ?? 'default');
  const config = loadConfig();
  const ctx = await createContext(config, { lock: LOCKS.catalogRebuild });
  try {
    await bootstrap(ctx);
    const org = await findOrganizationByName(ctx.db, orgName);
    if (!org) throw new CliError(`no organization "${orgName}"`);
    const dest = await ctx.db.selectFrom('storage_destinations').selectAll().where('organization_id', '=', org.id).where('name', '=', String(values.destination)).executeTakeFirst();
    if (!dest) throw new CliError(`no storage destination "${values.destination}" in organization "${org.name}": add it again (same configuration) first`);
    const r = await rebuildCatalog(ctx, org, dest);
    process.stdout.write(
      `read ${r.manifests} manifests: added ${r.backups_added} backups, ${r.artifacts_added} artifacts, ${r.databases_added} databases, ${r.branches_added} branches\n` +
        r.problems.map((p) => `  problem: ${p}\n`).join('') +
        (r.branches_added ? 'rebuilt branches have no connection URL: set it again (PATCH the branch) before new backups\n' : ''),
    );
  } finally {
    await ctx.catalog.close();
  }
}

async function secretsRotate(): Promise<void> {
  const { createContext, rotateSecretKey } = await serverModules();
  const config = loadConfig();
  const newKey = process.env.STRONGBOX_NEW_SECRET_KEY || null;
  const ctx = await createContext(config, { lock: LOCKS.secretsRotate });
  try {
    const { secrets } = await rotateSecretKey(ctx, newKey);
    process.stdout.write(
      `re-encrypted ${secrets} secrets under the new key (fingerprint ${await getSetting(ctx.db, SECRET_KEY_FINGERPRINT)})` +
        `${config.secretKey ? '; now set STRONGBOX_SECRET_KEY to the new key' : ` (${config.dataDir}/secret.key)`} in every process before starting it again\n`,
    );
  } finally {
    await ctx.catalog.close();
  }
}

/**
 * Print the fingerprint of the key this process would use, without opening the catalog
 * (so it works beside a running server): a process whose key does not match refuses to
 * start and names the fingerprint it expected, and this tells which key file that is.
 */
async function secretsFingerprint(): Promise<void> {
  const { secretKeySource } = await serverModules();
  const config = loadConfig();
  if (!config.secretKey && !fs.existsSync(keyFile(config.dataDir))) throw new CliError(`no secret key: STRONGBOX_SECRET_KEY is not set and ${keyFile(config.dataDir)} does not exist`);
  const key = config.secretKey ?? fs.readFileSync(keyFile(config.dataDir), 'utf8').trim();
  if (!/^[0-9a-fA-F]{64}$/.test(key)) throw new CliError(`${secretKeySource(config)} is not a 64-hex-character key`);
  process.stdout.write(`${keyFingerprint(Buffer.from(key, 'hex'))}  ${secretKeySource(config)}\n`);
}

/** The command line, parsed and checked by src/cli.ts; the server commands run here. */
async function main(argv: string[]): Promise<void> {
  return runCommandLine(argv, {
    serve: () => serve(true),
    worker: () => serve(false),
    'token create': tokenCreate,
    'catalog rebuild': catalogRebuild,
    'secrets rotate-key': secretsRotate,
    'secrets fingerprint': secretsFingerprint,
  });
}

main(process.argv.slice(2)).catch((e) => {
  if (e instanceof ConfigError) process.stderr.write(`strongbox: configuration error: ${e.message}\n`);
  else if (e instanceof CliError) process.stderr.write(`strongbox: ${e.message}\n`);
  else process.stderr.write(`strongbox: ${e instanceof Error ? e.message : String(e)}\n`);
  // 2: the command line is wrong (usage); 1: the operation failed.
  process.exit(e instanceof CliError ? e.exitCode : 1);
});
