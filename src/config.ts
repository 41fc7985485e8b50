/**
 * Configuration, read from the environment once at start and validated: a bad value
 * stops the process with the variable's name (ConfigError), never a crash later.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** `sqlite:<file>` (default: <dataDir>/catalog.sqlite) or a `postgres://` URL. */
  catalogUrl: string;
  /** `<id>:<secret>` of an admin token to ensure at start, or null. */
  bootstrapToken: { id: string; secret: string } | null;
  /** zstd level for dumps (1..19). */
  zstdLevel: number;
  /** Price used for `estimated_storage_cost`, per GB-month. */
  storagePricePerGbMonth: number;
  /** Backups run at once by one process. */
  maxConcurrentBackups: number;
  /** Restores and verifications run at once by one process. */
  maxConcurrentJobs: number;
  /** A dump that produces no byte for this long is killed and the backup fails. */
  dumpIdleTimeoutSeconds: number;
  /** How long a claimed job's lease lasts before another worker may take it over. */
  leaseSeconds: number;
  /** How often the scheduler looks for due policies and expired backups. */
  schedulerIntervalSeconds: number;
  /** Requests a minute per token (0: no limit). */
  rateLimitPerMinute: number;
  /** Answers of repeated catalog reads kept until the catalog changes (api/response-cache.ts); 0: none. */
  responseCacheEntries: number;
  /** 64 hex chars; when null a key file under the data dir is used. */
  secretKey: string | null;
  /** An age identity file used to decrypt backups for restores (STRONGBOX_AGE_IDENTITY_FILE). */
  ageIdentityFile: string | null;
  /**
   * The folders local destinations may be in (STRONGBOX_LOCAL_ROOTS, separated by
   * path.delimiter), absolute and normalized; `<dataDir>/backups`, where every organization's
   * default destination is, always comes first. See destinations.ts for who may use which part.
   */
  localRoots: string[];
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** STRONGBOX_LOG_FORMAT: `json` lines, `pretty` human lines, or `auto`: pretty when stdout is a terminal (log.ts). */
  logFormat: 'auto' | 'json' | 'pretty';
  /** STRONGBOX_METRICS_LISTEN: where to serve /metrics without a token, or null (only the API's /metrics, with one). */
  metricsListen: { host: string; port: number } | null;
  /** The built dashboard (STRONGBOX_UI_DIR, absolute); null: dist/ui of the package (api/ui.ts). */
  uiDir: string | null;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function numberVar(env: Env, name: string, def: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new ConfigError(name, `must be a non-negative number, got "${raw}"`);
  return n;
}

export const TOKEN_ID_RE = /^[A-Za-z0-9_-]{4,64}$/;
export const TOKEN_SECRET_RE = /^[A-Za-z0-9_.~+/=-]{16,256}$/;

/**
 * STRONGBOX_METRICS_LISTEN: `host:port`, `[ipv6]:port`, or `:port` for every interface
 * (that listener has no authentication: a private address is the safer choice).
 */
function metricsListenVar(env: Env): Config['metricsListen'] {
  const raw = (env.STRONGBOX_METRICS_LISTEN ?? '').trim();
  if (raw === '') return null;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]*)):(\d{1,5})$/.exec(raw);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError('STRONGBOX_METRICS_LISTEN', `must be "host:port" (e.g. 127.0.0.1:9464, [::1]:9464, or :9464 for every interface), got "${raw}"`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** Read and validate the configuration. Throws ConfigError naming the bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const host = env.STRONGBOX_HOST || '127.0.0.1';
  if (!/^[A-Za-z0-9.:_-]+$/.test(host)) throw new ConfigError('STRONGBOX_HOST', `not a host name or address: "${host}"`);
  const port = intVar(env, 'STRONGBOX_PORT', 8080, 0, 65535);
  const dataDir = path.resolve(env.STRONGBOX_DATA_DIR || './data');

  let catalogUrl = env.STRONGBOX_CATALOG_URL || '';
  if (catalogUrl === '') catalogUrl = `sqlite:${path.join(dataDir, 'catalog.sqlite')}`;
  else if (!/^(sqlite:|postgres:\/\/|postgresql:\/\/)/.test(catalogUrl)) {
    throw new ConfigError('STRONGBOX_CATALOG_URL', 'must be "sqlite:<file>" or a postgres:// URL');
  }

  let bootstrapToken: Config['bootstrapToken'] = null;
  const bt = env.STRONGBOX_BOOTSTRAP_TOKEN;
  if (bt) {
    const i = bt.indexOf(':');
    const id = i > 0 ? bt.slice(0, i) : '';
    const secret = i > 0 ? bt.slice(i + 1) : '';
    // Never echo the value: it is a secret.
    if (!TOKEN_ID_RE.test(id)) throw new ConfigError('STRONGBOX_BOOTSTRAP_TOKEN', 'must be "<id>:<secret>" with an id of 4-64 letters, digits, "_" or "-"');
    if (!TOKEN_SECRET_RE.test(secret)) throw new ConfigError('STRONGBOX_BOOTSTRAP_TOKEN', 'the secret must be 16-256 characters of letters, digits or "_.~+/=-"');
    bootstrapToken = { id, secret };
  }

  const secretKey = env.STRONGBOX_SECRET_KEY || null;
  if (secretKey !== null && !/^[0-9a-fA-F]{64}$/.test(secretKey)) {
    throw new ConfigError('STRONGBOX_SECRET_KEY', 'must be 64 hex characters (32 bytes), e.g. from `openssl rand -hex 32`');
  }

  const ageIdentityFile = env.STRONGBOX_AGE_IDENTITY_FILE ? path.resolve(env.STRONGBOX_AGE_IDENTITY_FILE) : null;
  if (ageIdentityFile !== null && !fs.existsSync(ageIdentityFile)) {
    throw new ConfigError('STRONGBOX_AGE_IDENTITY_FILE', `no such file: ${ageIdentityFile}`);
  }

  const localRoots = [path.join(dataDir, 'backups')];
  for (const raw of (env.STRONGBOX_LOCAL_ROOTS ?? '').split(path.delimiter)) {
    const dir = raw.trim();
    if (dir === '') continue;
    if (!path.isAbsolute(dir)) throw new ConfigError('STRONGBOX_LOCAL_ROOTS', `"${dir}" is not an absolute path`);
    const root = path.resolve(dir);
    if (fs.existsSync(root) && !fs.statSync(root).isDirectory()) throw new ConfigError('STRONGBOX_LOCAL_ROOTS', `"${root}" is not a directory`);
    if (!localRoots.includes(root)) localRoots.push(root);
  }

  const logLevel = (env.STRONGBOX_LOG_LEVEL || 'info') as Config['logLevel'];
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError('STRONGBOX_LOG_LEVEL', 'must be one of fatal, error, warn, info, debug, trace, silent');
  }
  const logFormat = (env.STRONGBOX_LOG_FORMAT || 'auto') as Config['logFormat'];
  if (!['auto', 'json', 'pretty'].includes(logFormat)) throw new ConfigError('STRONGBOX_LOG_FORMAT', 'must be one of auto, json, pretty');

  return {
    host,
    port,
    dataDir,
    catalogUrl,
    bootstrapToken,
    zstdLevel: intVar(env, 'STRONGBOX_ZSTD_LEVEL', 3, 1, 19),
    storagePricePerGbMonth: numberVar(env, 'STRONGBOX_STORAGE_PRICE_PER_GB_MONTH', 0.023),
    maxConcurrentBackups: intVar(env, 'STRONGBOX_MAX_CONCURRENT_BACKUPS', 2, 1, 64),
    maxConcurrentJobs: intVar(env, 'STRONGBOX_MAX_CONCURRENT_JOBS', 2, 1, 64),
    dumpIdleTimeoutSeconds: intVar(env, 'STRONGBOX_DUMP_IDLE_TIMEOUT_SECONDS', 600, 1, 86400),
    leaseSeconds: intVar(env, 'STRONGBOX_LEASE_SECONDS', 60, 5, 3600),
    schedulerIntervalSeconds: intVar(env, 'STRONGBOX_SCHEDULER_INTERVAL_SECONDS', 30, 1, 3600),
    rateLimitPerMinute: intVar(env, 'STRONGBOX_RATE_LIMIT_PER_MINUTE', 600, 0, 1_000_000),
    responseCacheEntries: intVar(env, 'STRONGBOX_RESPONSE_CACHE_ENTRIES', 512, 0, 100_000),
    metricsListen: metricsListenVar(env),
    secretKey,
    ageIdentityFile,
    localRoots,
    logLevel,
    logFormat,
    uiDir: env.STRONGBOX_UI_DIR ? path.resolve(env.STRONGBOX_UI_DIR) : null,
  };
}
