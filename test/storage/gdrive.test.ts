import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { googleDriveProvider, type DriveConfig } from '../../src/storage/gdrive/index.js';
import { startFakeDrive, type FakeDrive } from '../helpers/fakedrive.js';
import { storageConformance } from './conformance.js';

function configFor(drive: FakeDrive, kind: 'oauth' | 'service_account', extra: Partial<DriveConfig> = {}): DriveConfig {
  return {
    folder_id: drive.folderId,
    credentials: kind === 'oauth' ? drive.oauthCredentials : drive.serviceAccountCredentials,
    api_base: drive.apiBase,
    token_uri: drive.tokenUri,
    chunk_size_mb: 1,
    request_timeout_ms: 10_000,
    ...extra,
  };
}

for (const kind of ['oauth', 'service_account'] as const) {
  storageConformance(`google_drive (${kind === 'oauth' ? 'oauth' : 'service account'})`, async () => {
    const drive = await startFakeDrive();
    return { provider: googleDriveProvider(configFor(drive, kind)), cleanup: () => drive.close() };
  });
}
