// The Content-Security-Policy of the renderer, one for both shells: in browser mode the daemon
// sends it as a header, in Electron the main process adds it to every response. The renderer is
// a bundle of our own files: no inline scripts, no eval, no plugins, no frames, no forms; styles
// may be inline because xterm.js and React set them at run time.

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
