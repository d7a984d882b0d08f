// What the window may do: its options (isolated, sandboxed, no Node), where it may navigate (only
// within the renderer), what it may open (nothing in Electron; web links go to the system browser)
// and which permissions its pages get.

import type { BrowserWindowConstructorOptions } from 'electron';
import { isRendererUrl } from './ipc.js';

export function mainWindowOptions(options: {
  preload: string;
  icon?: string;
  devTools: boolean;
}): BrowserWindowConstructorOptions {
  return {
    width: 1200,
    height: 800,
    minWidth: 720,
    minHeight: 480,
    show: false,
    title: 'Vireo',
    ...(options.icon ? { icon: options.icon } : {}),
    webPreferences: {
      preload: options.preload,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      navigateOnDragDrop: false,
      spellcheck: false,
      devTools: options.devTools,
    },
  };
}

/** The window stays on the renderer: a link or a dropped file must not replace it. */
export function isAllowedNavigation(url: string): boolean {
  return isRendererUrl(url);
}

/** window.open and target=_blank never make Electron windows; http(s) links open in the system browser. */
export function opensExternally(url: string): boolean {
  try {
    const { protocol } = new URL(url);
    return protocol === 'https:' || protocol === 'http:';
  } catch {
    return false;
  }
}

/** Copying from the console is the one thing the renderer asks for. */
const ALLOWED_PERMISSIONS = new Set(['clipboard-sanitized-write']);

export function isPermissionAllowed(permission: string): boolean {
  return ALLOWED_PERMISSIONS.has(permission);
}
