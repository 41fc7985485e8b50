/**
 * The one place that knows every storage provider: it turns a destination's stored
 * configuration, or a storage URL (file://, s3://, gdrive://), into a StorageProvider.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { localProvider } from './local/index.js';
import { googleDriveProvider, redactDriveConfig, type DriveConfig } from './gdrive/index.js';
import { parseS3Config, redactS3Config, s3Provider } from './s3/index.js';
import { StorageError, type ProviderName, type StorageProvider } from './provider.js';

/** A destination's provider and its configuration (as stored in the catalog). */
export interface StorageSpec {
  provider: ProviderName;
  config: Record<string, unknown>;
}

function configError(provider: ProviderName, field: string, why: string): StorageError {
  return new StorageError(`invalid ${provider} storage configuration: ${field} ${why}`, true);
}

/**
 * Build the provider for a destination. Throws StorageError(permanent) naming the bad
 * field when the configuration is invalid, or when the provider is not available.
 *
 * Local: `{ path: "/absolute/dir" }`.
 */
export function openStorage(spec: StorageSpec): StorageProvider {
  const { provider, config } = spec;
  switch (provider) {
    case 'local': {
      const dir = config.path;
      if (typeof dir !== 'string' || dir === '') throw configError(provider, 'path', 'must be a non-empty string');
      if (!path.isAbsolute(dir)) throw configError(provider, 'path', 'must be an absolute path');
      return localProvider(dir);
    }
    case 's3':
      return s3Provider(parseS3Config(config));
    case 'google_drive':
      return googleDriveProvider(config as unknown as DriveConfig);
    default: {
      const unknown: never = provider;
      throw new StorageError(`unknown storage provider "${String(unknown)}"`, true);
    }
  }
}

/** The secret fields of each provider's configuration, replaced by this in API answers and logs. */
export const REDACTED = '[redacted]';

/**
 * A destination's configuration with every secret replaced by "[redacted]", for API
 * responses and logs.
 */
export function redactStorageConfig(spec: StorageSpec): Record<string, unknown> {
  switch (spec.provider) {
    case 'local':
      return { ...spec.config };
    case 'google_drive':
      return redactDriveConfig(spec.config) as Record<string, unknown>;
    case 's3':
      return redactS3Config(spec.config) as Record<string, unknown>;
    default:
      return Object.fromEntries(Object.entries(spec.config).map(([k, v]) => [k, /secret|key|token|password|credential/i.test(k) ? REDACTED : v]));
  }
}

/**
 * Turn a storage URL into a spec for {@link openStorage}: `file:///abs/path` → local,
 * `s3://bucket/prefix` → s3, `gdrive://<folder id>` → google_drive (their credentials go in
 * the configuration, never the URL). Throws StorageError(permanent).
 */
export function parseStorageUrl(url: string): StorageSpec {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not echoed back: a malformed URL may still hold credentials.
    throw new StorageError('invalid storage URL: cannot be parsed', true);
  }
  switch (parsed.protocol) {
    case 'file:': {
      if (parsed.host !== '' && parsed.host !== 'localhost') {
        throw new StorageError(`invalid storage URL ${JSON.stringify(url)}: file URLs must be file:///absolute/path`, true);
      }
      if (parsed.search || parsed.hash) {
        throw new StorageError(`invalid storage URL ${JSON.stringify(url)}: unexpected query or fragment`, true);
      }
      let dir = fileURLToPath(parsed);
      // file:///srv/backups/ and file:///srv/backups are the same folder.
      if (dir.length > 1 && dir.endsWith('/')) dir = dir.replace(/\/+$/, '');
      return { provider: 'local', config: { path: dir } };
    }
    case 's3:': {
      // s3://bucket/prefix: credentials and the rest come with the JSON configuration.
      if (parsed.username || parsed.password) throw new StorageError('invalid storage URL: put credentials in the configuration, not the URL', true);
      const prefix = decodeURIComponent(parsed.pathname.replace(/^\/+|\/+$/g, ''));
      return { provider: 's3', config: { bucket: parsed.hostname, ...(prefix ? { prefix } : {}) } };
    }
    case 'gdrive:':
      if (parsed.username || parsed.password) throw new StorageError('invalid storage URL: put credentials in the configuration, not the URL', true);
      return { provider: 'google_drive', config: { folder_id: parsed.hostname } };
    default:
      throw new StorageError(`unsupported storage URL scheme "${parsed.protocol}" (expected file://, s3:// or gdrive://)`, true);
  }
}
