/**
 * Builds the web dashboard into dist/ui/: the bundle and style sheet under assets/ with
 * content-hashed names (the server serves them as immutable), and index.html naming them.
 * No inline script or style anywhere: the server sends a strict Content-Security-Policy.
 *
 * Run by `npm run build` (so `npm start` builds it); the browser tests import buildUi().
 *
 *   node ui/build.mjs [--verbose]     # --verbose: every file with its size
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const uiDir = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(uiDir);
/** Where the server reads the built files from, and the URL prefix it serves assets under. */
export const UI_DIST = path.join(root, 'dist', 'ui');
const ASSET_URL = '/ui/assets/';

/**
 * Build the dashboard into `outDir` (default dist/ui). The new files are written beside the
 * old ones and swapped in at the end, so a server reading dist/ui meanwhile never sees a
 * half-written index.html naming assets that are not there yet.
 * @param {{ outDir?: string, quiet?: boolean }} [options]
 * @returns {Promise<{ outDir: string, files: Array<{ name: string, bytes: number, gzipBytes: number }>, bytes: number, gzipBytes: number }>}
 */
export async function buildUi(options = {}) {
  const outDir = options.outDir ?? UI_DIST;
  const staging = `${outDir}.tmp-${process.pid}-${Date.now()}`;
  const assets = path.join(staging, 'assets');
  fs.mkdirSync(assets, { recursive: true });
  try {
    const result = await esbuild.build({
      entryPoints: [path.join(uiDir, 'src', 'main.tsx')],
      bundle: true,
      minify: true,
      format: 'esm',
      target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
      jsx: 'automatic',
      jsxImportSource: 'preact',
      // Pages other than the overview are chunks loaded when first shown (src/routes.ts).
      splitting: true,
      entryNames: '[name]-[hash]',
      chunkNames: '[name]-[hash]',
      outdir: assets,
      metafile: true,
      legalComments: 'none',
      logLevel: 'silent',
      define: { 'process.env.NODE_ENV': '"production"' },
    });
    // The entry's script, and its style sheet: esbuild puts the CSS of every chunk it can
    // load into the entry's, so one <link> styles every page. The chunks' own copies are dropped.
    const outputs = Object.entries(result.metafile.outputs);
    const entry = outputs.find(([f, o]) => o.entryPoint?.endsWith('src/main.tsx') && f.endsWith('.js'));
    const js = entry && path.basename(entry[0]);
    const css = entry?.[1].cssBundle && path.basename(entry[1].cssBundle);
    if (!js || !css) throw new Error(`esbuild produced no ${js ? 'style sheet' : 'script'} (outputs: ${outputs.map(([f]) => path.basename(f)).join(', ')})`);
    for (const [f] of outputs) if (f.endsWith('.css') && path.basename(f) !== css) fs.rmSync(path.resolve(f));
    const chunks = outputs.map(([f]) => path.basename(f)).filter((f) => f.endsWith('.js') && f !== js);
    // The chunks the entry imports statically (the shared code) are named in the page, so the
    // browser fetches them alongside the entry instead of after parsing it.
    const preload = entry[1].imports.filter((i) => i.kind === 'import-statement').map((i) => path.basename(i.path));

    const icon = fs.readFileSync(path.join(uiDir, 'favicon.svg'));
    const iconName = `favicon-${crypto.createHash('sha256').update(icon).digest('hex').slice(0, 8)}.svg`;
    fs.writeFileSync(path.join(assets, iconName), icon);

    const html = fs
      .readFileSync(path.join(uiDir, 'index.html'), 'utf8')
      .replace('%JS%', ASSET_URL + js)
      .replace('%CSS%', ASSET_URL + css)
      .replace('%FAVICON%', ASSET_URL + iconName)
      .replace('%PRELOAD%', preload.map((f) => `<link rel="modulepreload" href="${ASSET_URL}${f}">`).join('\n    '));
    fs.writeFileSync(path.join(staging, 'index.html'), html);

    const files = [js, css, ...chunks, iconName].map((name) => {
      const data = fs.readFileSync(path.join(assets, name));
      return { name, bytes: data.length, gzipBytes: zlib.gzipSync(data, { level: 9 }).length };
    });
    const old = `${outDir}.old-${process.pid}-${Date.now()}`;
    if (fs.existsSync(outDir)) fs.renameSync(outDir, old);
    fs.renameSync(staging, outDir);
    fs.rmSync(old, { recursive: true, force: true });
    const bytes = files.reduce((s, f) => s + f.bytes, 0);
    const gzipBytes = files.reduce((s, f) => s + f.gzipBytes, 0);
    if (!options.quiet) {
      const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
      if (process.argv.includes('--verbose')) for (const f of files) process.stdout.write(`  ${path.relative(root, path.join(outDir, 'assets', f.name))}  ${kb(f.bytes)} (${kb(f.gzipBytes)} gzip)\n`);
      const first = files.filter((f) => f.name === js || f.name === css || preload.includes(f.name)).reduce((n, f) => n + f.gzipBytes, 0);
      process.stdout.write(`dashboard built: ${kb(bytes)} in total, ${kb(gzipBytes)} gzip; ${kb(first)} gzip before the first page shows (the rest loads with the pages that use it)\n`);
    }
    return { outDir, files, bytes, gzipBytes };
  } catch (e) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw e;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  buildUi().catch((e) => {
    process.stderr.write(`dashboard build failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
