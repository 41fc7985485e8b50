/**
 * The one place that knows every storage provider: it turns a destination's stored
 * configuration, or a storage URL (file://, s3://, gdrive://), into a StorageProvider.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { localProvider } from './local/index.js';
import { StorageError, type ProviderName, type StorageProvider } from './provider.js';

/** A destination's provider and its configuration (as stored in the catalog). */
export interface StorageSpec {
  provider: ProviderName;
  config: Record<string, unknown>;
}

function configError(provider: ProviderName, field: string, why: string): StorageError {
  return new StorageError(`invalid ${provider} storage configuration: ${field} ${why}`, true);
}

function notSupportedYet(provider: string): StorageError {
  return new StorageError(`storage provider "${provider}" is not supported yet`, true);
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
    case 'google_drive':
      throw notSupportedYet(provider);
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
    default:
      return Object.fromEntries(Object.entries(spec.config).map(([k, v]) => [k, /secret|key|token|password|credential/i.test(k) ? REDACTED : v]));
  }
}

/**
 * Turn a storage URL into a spec for {@link openStorage}: `file:///abs/path` → local.
 * s3:// and gdrive:// are recognised but not supported yet. Throws StorageError(permanent).
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
    case 's3:':
      throw notSupportedYet('s3');
    case 'gdrive:':
      throw notSupportedYet('google_drive');
    default:
      throw new StorageError(`unsupported storage URL scheme "${parsed.protocol}" (expected file://, s3:// or gdrive://)`, true);
  }
}
