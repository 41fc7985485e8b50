/**
 * The web dashboard's files, as the build left them in dist/ui (ui/ builds there):
 * `GET /` is its index.html, `GET /ui/<file>` anything else in that folder (the hashed
 * bundles under /ui/assets/). The dashboard talks only to the public API; this serves
 * files and nothing else, never a file outside the folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../context.js';
import { notFound } from './errors.js';

/** Strict: nothing inline, nothing from elsewhere, never in a frame. */
export const UI_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

/** The folder holding package.json: src/api/ when run from source, dist/src/api/ when built. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** Where the built dashboard is: STRONGBOX_UI_DIR, else dist/ui of the package (never the working directory's). */
export function uiDirectory(configured: string | null): string {
  return configured ?? path.join(packageRoot(), 'dist', 'ui');
}

function securityHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', UI_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY');
}

/**
 * The file `rel` (a path under the UI folder, as the URL gave it) names, or null: a path
 * with a ".." or "." segment, a hidden file, a backslash or a NUL names nothing, and
 * neither does a symbolic link that leads out of the folder.
 */
async function fileIn(root: string, rel: string): Promise<{ file: string; stat: fs.Stats } | null> {
  if (rel === '' || rel.length > 512 || /[\\\u0000]/.test(rel)) return null;
  const segments = rel.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..' || s.startsWith('.'))) return null;
  try {
    const realRoot = await fs.promises.realpath(root);
    const file = await fs.promises.realpath(path.join(realRoot, ...segments));
    const inside = path.relative(realRoot, file);
    if (inside === '' || inside.startsWith('..') || path.isAbsolute(inside)) return null;
    const stat = await fs.promises.stat(file);
    return stat.isFile() ? { file, stat } : null;
  } catch {
    return null;
  }
}

async function sendFile(req: FastifyRequest, reply: FastifyReply, found: { file: string; stat: fs.Stats }, cacheControl: string): Promise<FastifyReply> {
  const etag = `W/"${found.stat.size.toString(16)}-${Math.floor(found.stat.mtimeMs).toString(16)}"`;
  securityHeaders(reply).header('cache-control', cacheControl).header('etag', etag);
  if (req.headers['if-none-match'] === etag) return reply.status(304).send();
  const type = CONTENT_TYPES[path.extname(found.file).toLowerCase()] ?? 'application/octet-stream';
  return reply.type(type).send(await fs.promises.readFile(found.file));
}

export function uiRoutes(ctx: AppContext): FastifyPluginAsync {
  const root = uiDirectory(ctx.config.uiDir);
  return async (app) => {
    app.get('/', { config: { public: true }, schema: { hide: true } }, async (req, reply) => {
      const index = await fileIn(root, 'index.html');
      if (!index) {
        return securityHeaders(reply)
          .status(503)
          .header('cache-control', 'no-store')
          .type('text/plain; charset=utf-8')
          .send(`Strongbox ${'\u2014'} the dashboard is not built: run npm run build (it builds ui/ into ${root}). The API works without it.\n`);
      }
      // The page itself is checked on every load, so a new version is picked up at once;
      // the bundles it names have hashed names and are cached for good.
      return sendFile(req, reply, index, 'no-cache');
    });

    app.get('/ui/*', { config: { public: true }, schema: { hide: true } }, async (req, reply) => {
      const rel = (req.params as { '*': string })['*'];
      const found = await fileIn(root, rel);
      if (!found) throw notFound(`no file /ui/${rel.slice(0, 200)} in the dashboard`);
      return sendFile(req, reply, found, rel.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
    });
  };
}
