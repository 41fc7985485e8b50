// The data path's stream stages: compress, hash and count, verify, fan out to storage.
// Each does one thing; compose them with stream/promises pipeline() so errors propagate.
// storeStream (store.ts) is the backups' whole path: the tools piped into each other as OS
// pipes, the raw bytes read in a worker thread (inspect.ts), the stored bytes hashed and fanned out.
export {
  type Compression,
  type ProcessDuplexOptions,
  compressionSuffix,
  compressor,
  decompressor,
  processDuplex,
  zstdCompress,
  zstdDecompress,
} from './compress.js';
export { HashCounter, type HashCounterOptions } from './hash.js';
export { ChecksumMismatchError, Sha256Verifier } from './verify.js';
export { fanOut, type FanOutOptions, type FanOutResult, type FanOutTarget } from './fanout.js';
export { progressSnapshot, type ProgressInput, type ProgressSnapshot } from './progress.js';
export { StoreError, storeStream, type RawSource, type SourceProcess, type StoreOptions, type StoreProgress, type StoreResult } from './store.js';
export { RawInspector, type InspectSpec, type Inspection } from './inspect.js';
