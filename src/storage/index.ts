// Where artifacts are kept: one folder per provider behind the StorageProvider interface,
// wired by URL scheme in registry.ts; retries wrap providers from outside (retry.ts).
export { StorageError, type ObjectInfo, type ObjectWriter, type PartialInfo, type ProviderCapabilities, type ProviderName, type StorageProvider } from './provider.js';
export { checkPrefix, keySegments } from './keys.js';
export { openStorage, parseStorageUrl, type StorageSpec } from './registry.js';
export { isPermanent, retryingProvider, withRetry, type RetryOptions } from './retry.js';
export { localProvider } from './local/index.js';
