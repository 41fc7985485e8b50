// The data path's stream stages: compress, hash and count, verify, fan out to storage.
// Each does one thing; compose them with stream/promises pipeline() so errors propagate.
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
