// Which file of the renderer bundle a URL path names, and its media type: for the browser-mode
// server and for Electron's vireo:// protocol. Paths are refused rather than normalised: a path
// with `..`, `.`, a hidden name, a backslash or a NUL names no file.

import { realpathSync, statSync } from 'node:fs';
import { dirname, extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** renderer/dist of this checkout (or of the packaged app: the same layout inside the asar). */
export const DEFAULT_RENDERER_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  '..',
  'renderer',
  'dist',
);

/** The real path of a built renderer folder; a clear error when it has not been built. */
export function rendererRoot(rendererDir: string): string {
  try {
    const root = realpathSync(rendererDir);
    if (!statSync(join(root, 'index.html')).isFile()) throw new Error('index.html is not a file');
    return root;
  } catch (error) {
    throw new Error(
      `the renderer is not built (${join(rendererDir, 'index.html')}: ${(error as Error).message}); run npm run build`,
    );
  }
}

/** The file under `root` that `pathname` (still percent-encoded) names, or undefined. */
export function staticFilePath(root: string, pathname: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return undefined;
  }
  if (!decoded.startsWith('/') || decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const segments = decoded.slice(1).split('/');
  if (segments.at(-1) === '') segments.pop();
  if (segments.some((segment) => segment === '' || segment.startsWith('.'))) return undefined;
  return join(root, segments.length === 0 ? 'index.html' : segments.join('/'));
}

const MEDIA_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.wasm': 'application/wasm',
};

export function mediaType(path: string): string {
  return MEDIA_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/** A regular file inside `root` (a real path; symlinks are followed and must stay inside). */
export function servableFile(root: string, pathname: string): { path: string; size: number } | undefined {
  const candidate = staticFilePath(root, pathname);
  if (candidate === undefined) return undefined;
  try {
    const path = realpathSync(candidate);
    if (!path.startsWith(root + sep)) return undefined;
    const stat = statSync(path);
    return stat.isFile() ? { path, size: stat.size } : undefined;
  } catch {
    return undefined;
  }
}
