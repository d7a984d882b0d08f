// Routes live in the URL's hash (#/, #/new, #/vm/<id>/<tab>): works from file:// in Electron and
// from the daemon's server alike, and Back/Forward move between views.

import { useEffect, useState } from 'react';

export const VM_TABS = ['console', 'details', 'settings', 'log'] as const;
export type VmTab = (typeof VM_TABS)[number];

export type Route = { view: 'list' } | { view: 'new' } | { view: 'vm'; id: string; tab: VmTab };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'new') return { view: 'new' };
  if (parts[0] === 'vm' && parts[1]) {
    const tab = VM_TABS.find((name) => name === parts[2]) ?? 'console';
    return { view: 'vm', id: parts[1], tab };
  }
  return { view: 'list' };
}

export function href(route: Route): string {
  switch (route.view) {
    case 'list':
      return '#/';
    case 'new':
      return '#/new';
    case 'vm':
      return `#/vm/${encodeURIComponent(route.id)}/${route.tab}`;
  }
}

export function navigate(route: Route): void {
  window.location.hash = href(route);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
