// The Content-Security-Policy and the other security headers of the renderer, one set for both
// shells: the browser-mode server and Electron's vireo:// protocol send them with every file. The
// renderer is a bundle of our own files: no inline scripts, no eval, no plugins, no frames, no
// forms; styles may be inline because xterm.js and React set them at run time.

/** The policy; `connectSources` are the only places the page may open connections to. */
export function contentSecurityPolicy(connectSources: readonly string[]): string {
  const directives: [string, string][] = [
    ['default-src', "'self'"],
    ['script-src', "'self'"],
    ['style-src', "'self' 'unsafe-inline'"],
    ['img-src', "'self' data:"],
    ['font-src', "'self' data:"],
    ['connect-src', connectSources.length > 0 ? connectSources.join(' ') : "'none'"],
    ['object-src', "'none'"],
    ['base-uri', "'none'"],
    ['form-action', "'none'"],
    ['frame-ancestors', "'none'"],
  ];
  return directives.map(([name, value]) => `${name} ${value}`).join('; ');
}

/** Headers for every renderer file: the policy, no MIME sniffing, no referrers (browser mode's
 *  token is in the URL), no caching, no cross-origin embedding. */
export function securityHeaders(connectSources: readonly string[]): Record<string, string> {
  return {
    'Content-Security-Policy': contentSecurityPolicy(connectSources),
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
  };
}
