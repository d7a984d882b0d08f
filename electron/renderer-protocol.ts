// vireo://app/...: the renderer bundle as Electron loads it. A custom protocol rather than file://,
// so the page has an origin of its own and the same security headers as in browser mode.

import { readFile } from 'node:fs/promises';
import { securityHeaders } from '../core/src/ui-server/csp.js';
import { mediaType, servableFile } from '../core/src/ui-server/static-files.js';
import { isRendererUrl } from './ipc.js';

/** The answer to one request for `url`; `root` is the real path of renderer/dist. */
export async function rendererResponse(root: string, url: string, method = 'GET'): Promise<Response> {
  // The window talks to the daemon over IPC only: the page may connect nowhere.
  const headers = securityHeaders([]);
  if (!isRendererUrl(url)) return new Response('not found\n', { status: 404, headers });
  if (method !== 'GET' && method !== 'HEAD') {
    return new Response('method not allowed\n', { status: 405, headers: { ...headers, Allow: 'GET, HEAD' } });
  }
  const file = servableFile(root, new URL(url).pathname);
  if (file === undefined) return new Response('not found\n', { status: 404, headers });
  const body = method === 'HEAD' ? null : await readFile(file.path);
  return new Response(body, {
    status: 200,
    headers: { ...headers, 'Content-Type': mediaType(file.path), 'Content-Length': String(file.size) },
  });
}
