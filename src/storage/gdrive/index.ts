/**
 * Google Drive storage: objects are files in nested folders under one Drive folder
 * ("org/db/branch/x/dump.zst" → folders org, db, branch, x and the file dump.zst), written
 * by resumable uploads to a hidden partial file that commit() renames into place.
 *
 * Drive allows several files or folders with the same name in one folder. Folders made by
 * two writers at once are settled on the oldest; a name with several objects stands for the
 * newest committed one (see upload.ts).
 */
import { keySegments, checkPrefix } from '../keys.js';
import { StorageError, writeWhole, type ObjectInfo, type ObjectWriter, type PartialInfo, type StorageProvider } from '../provider.js';
import { DriveApi, FOLDER_MIME, type DriveFile } from './api.js';
import { chunkBytes, parseDriveConfig, type DriveConfig } from './config.js';
import { DriveObjectWriter, PARTIAL_NAME, PARTIAL_PROPERTY, isObject, newestObject, partialName } from './upload.js';

export { parseDriveConfig, redactDriveConfig } from './config.js';
export type { DriveConfig, DriveCredentials, OAuthCredentials, ResolvedDriveConfig, ServiceAccountCredentials } from './config.js';
export { DriveApi, FOLDER_MIME, type DriveFile } from './api.js';

/** The folder among same-named ones that every writer agrees on: the oldest, then lowest id. */
function pickFolder(files: DriveFile[]): string | null {
  let best: DriveFile | null = null;
  for (const f of files) {
    if (f.mimeType !== FOLDER_MIME) continue;
    if (best === null) best = f;
    else {
      const a = f.createdTime ?? '';
      const b = best.createdTime ?? '';
      if (a < b || (a === b && f.id < best.id)) best = f;
    }
  }
  return best?.id ?? null;
}

function size(file: DriveFile): number {
  const n = Number(file.size ?? 0);
  return Number.isFinite(n) ? n : 0;
}

const byName = (a: DriveFile, b: DriveFile): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * A provider keeping objects under the Drive folder `config.folder_id`. The configuration is
 * checked first (StorageError(permanent) naming the bad field). Folders are made on demand
 * and their ids cached for the provider's life.
 */
export function googleDriveProvider(config: DriveConfig): StorageProvider {
  const cfg = parseDriveConfig(config);
  const api = new DriveApi(cfg);
  const root = cfg.folder_id;
  const chunkSize = chunkBytes(cfg);
  /** Folder key ("org/db") → its id; a pending entry is a lookup-or-create in progress. */
  const folders = new Map<string, Promise<string>>();
  api.onFolderGone = () => folders.clear();

  /** The key's segments, refusing the names partial files use. */
  const checkKey = (key: string): string[] => {
    const segments = keySegments(key);
    if (PARTIAL_NAME.test(segments[segments.length - 1])) {
      throw new StorageError(`invalid storage key ${JSON.stringify(key)}: reserved for partial writes`, true);
    }
    return segments;
  };

  /** Find the existing folder `name` in `parent`, or make it. */
  const makeFolder = async (parent: string, name: string, what: string): Promise<string> => {
    const existing = pickFolder(await api.listChildren(parent, what, name));
    if (existing !== null) return existing;
    const made = await api.createFolder(parent, name, what);
    // Another process may have made the same folder meanwhile: all settle on the same one,
    // and whoever made another removes theirs (it is still empty).
    const winner = pickFolder(await api.listChildren(parent, what, name)) ?? made.id;
    if (winner !== made.id) await api.delete(made.id, what).catch(() => {});
    return winner;
  };

  /** Id of the folder holding `segments` (a folder path), or null when `create` is off and it is missing. */
  const folderOf = async (segments: string[], create: boolean, what: string): Promise<string | null> => {
    let id = root;
    for (let i = 0; i < segments.length; i++) {
      const path = segments.slice(0, i + 1).join('/');
      let entry = folders.get(path);
      if (entry === undefined) {
        if (!create) {
          const found = pickFolder(await api.listChildren(id, what, segments[i]));
          if (found === null) return null;
          folders.set(path, Promise.resolve(found));
          id = found;
          continue;
        }
        const pending = makeFolder(id, segments[i], what);
        entry = pending;
        folders.set(path, pending);
        pending.catch(() => {
          if (folders.get(path) === pending) folders.delete(path);
        });
      }
      id = await entry;
    }
    return id;
  };

  /** The folder id and current file of `key`, or null when there is none. */
  const lookup = async (key: string, what: string): Promise<{ folderId: string; file: DriveFile } | null> => {
    const segments = checkKey(key);
    const folderId = await folderOf(segments.slice(0, -1), false, what);
    if (folderId === null) return null;
    const file = newestObject(await api.listChildren(folderId, what, segments[segments.length - 1]));
    return file === null ? null : { folderId, file };
  };

  const notFound = (key: string): StorageError => new StorageError(`google drive: object "${key}" not found`, true, true);

  const create = async (key: string): Promise<ObjectWriter> => {
    const segments = checkKey(key);
    const what = `create "${key}"`;
    const folderId = (await folderOf(segments.slice(0, -1), true, what)) as string;
    const finalName = segments[segments.length - 1];
    const session = await api.startUpload(folderId, partialName(finalName), { [PARTIAL_PROPERTY]: '1' }, what);
    return new DriveObjectWriter({ api, key, folderId, finalName, session, chunkSize });
  };

  /** Every object under folder `folderId` (key `dirKey`) whose key starts with `prefix`, in key order. */
  async function* walk(folderId: string, dirKey: string, prefix: string): AsyncGenerator<ObjectInfo> {
    const children = await api.listChildren(folderId, `list "${prefix}"`);
    const files = new Map<string, DriveFile[]>();
    const subfolders = new Map<string, DriveFile[]>();
    for (const f of children.sort(byName)) {
      const group = f.mimeType === FOLDER_MIME ? subfolders : isObject(f) ? files : null;
      if (group === null) continue;
      const list = group.get(f.name) ?? [];
      list.push(f);
      group.set(f.name, list);
    }
    const names = [...new Set([...files.keys(), ...subfolders.keys()])].sort();
    for (const name of names) {
      const key = dirKey === '' ? name : `${dirKey}/${name}`;
      const file = newestObject(files.get(name) ?? []);
      if (file !== null && key.startsWith(prefix)) yield { key, size: size(file) };
      const sub = pickFolder(subfolders.get(name) ?? []);
      // Only descend where keys can still match the prefix.
      if (sub !== null && (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`))) {
        if (!folders.has(key)) folders.set(key, Promise.resolve(sub));
        yield* walk(sub, key, prefix);
      }
    }
  }

  const provider = {
    provider: 'google_drive',
    // Partials are found by key only (removePartials): listing them all would walk every
    // folder of the Drive, and unfinished upload sessions expire on their own after a week.
    capabilities: { localPath: false, listPartials: false },

    create,

    async put(key: string, data: Buffer): Promise<void> {
      try {
        await writeWhole(await create(key), data);
      } catch (err) {
        throw err instanceof StorageError ? err : new StorageError(`google drive: cannot put "${key}": ${String(err)}`, false, false, { cause: err });
      }
    },

    async read(key: string) {
      const found = await lookup(key, `read "${key}"`);
      if (found === null) throw notFound(key);
      return api.download(found.file, `read "${key}"`);
    },

    async stat(key: string): Promise<ObjectInfo | null> {
      const found = await lookup(key, `stat "${key}"`);
      return found === null ? null : { key, size: size(found.file) };
    },

    async delete(key: string): Promise<void> {
      const segments = checkKey(key);
      const what = `delete "${key}"`;
      const folderId = await folderOf(segments.slice(0, -1), false, what);
      if (folderId === null) return;
      // Every object of that name: a replaced one left behind by a failed commit included.
      for (const f of await api.listChildren(folderId, what, segments[segments.length - 1])) {
        if (isObject(f)) await api.delete(f.id, what);
      }
      // Emptied folders stay: a concurrent upload into one would lose its parent, and on
      // Drive the file only appears when the upload ends, so "empty" cannot be trusted.
    },

    async removePartials(key: string): Promise<void> {
      const segments = checkKey(key);
      const what = `remove partial writes of "${key}"`;
      const folderId = await folderOf(segments.slice(0, -1), false, what);
      if (folderId === null) return;
      // An upload that never finished made no file: its session expires on its own (a week).
      const mine = `.${segments[segments.length - 1]}.partial-`;
      for (const f of await api.listChildren(folderId, what)) {
        if (f.mimeType !== FOLDER_MIME && f.name.startsWith(mine) && PARTIAL_NAME.test(f.name)) await api.delete(f.id, what);
      }
    },

    async *listPartials(prefix: string): AsyncIterable<PartialInfo> {
      checkPrefix(prefix);
    },

    async *list(prefix: string): AsyncIterable<ObjectInfo> {
      checkPrefix(prefix);
      // Start from the deepest folder the prefix names fully.
      const dirKey = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
      const folderId = dirKey === '' ? root : await folderOf(dirKey.split('/'), false, `list "${prefix}"`);
      if (folderId === null) return;
      yield* walk(folderId, dirKey, prefix);
    },

    localPath(key: string): string | null {
      checkKey(key);
      return null;
    },

    describe(): Record<string, unknown> {
      return { provider: 'google_drive', folder_id: root };
    },
  } satisfies StorageProvider;
  return provider;
}
