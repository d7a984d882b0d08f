// The Electron main process: one window on the renderer (vireo://app/), one instance per user, the
// menu, and the IPC bridge to the daemon (started when nobody serves its socket). Everything with a
// decision in it lives in the small modules next to this file, which are tested under Node.

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  app,
  BrowserWindow,
  dialog,
  ipcMain,
  Menu,
  protocol,
  session,
  shell,
  type WebContents,
} from 'electron';
import { ErrorCode } from '../core/src/api/schema.js';
import { connectToDaemon } from '../core/src/daemon/connect.js';
import { DEFAULT_RENDERER_DIR, rendererRoot } from '../core/src/ui-server/static-files.js';
import { type BridgeMessage, DaemonBridge, daemonEnvironment } from './daemon-bridge.js';
import { IpcChannel, isTrustedSender, RENDERER_SCHEME, RENDERER_URL } from './ipc.js';
import { applicationMenu } from './menu.js';
import { rendererResponse } from './renderer-protocol.js';
import { isAllowedNavigation, isPermissionAllowed, mainWindowOptions, opensExternally } from './security.js';

const here = dirname(fileURLToPath(import.meta.url));
const ICON = join(here, '..', '..', 'assets', 'icons', '256x256.png');
const devTools = !app.isPackaged;
const bridges = new Map<number, DaemonBridge>();

protocol.registerSchemesAsPrivileged([
  { scheme: RENDERER_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } },
]);

function deliver(contents: WebContents, message: BridgeMessage): void {
  if (contents.isDestroyed()) return;
  if (message.kind === 'notification') contents.send(IpcChannel.notification, message.method, message.params);
  else contents.send(IpcChannel.closed, message.reason);
}

/** Every web contents, whatever made it: no navigation away, no new windows, no webviews. */
function lockDown(contents: WebContents): void {
  const stay = (event: { url: string; preventDefault(): void }) => {
    if (!isAllowedNavigation(event.url)) event.preventDefault();
  };
  contents.on('will-navigate', stay);
  contents.on('will-redirect', stay);
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    if (opensExternally(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
}

function createWindow(): BrowserWindow {
  const window = new BrowserWindow(
    mainWindowOptions({ preload: join(here, 'preload.cjs'), icon: ICON, devTools }),
  );
  const contents = window.webContents;
  const bridge = new DaemonBridge(
    () => connectToDaemon({ env: daemonEnvironment(process.env) }),
    (message) => deliver(contents, message),
  );
  bridges.set(contents.id, bridge);
  // A reload is a new page: the old page's subscriptions must not follow it.
  contents.on('did-start-loading', () => bridge.reset());
  contents.on('destroyed', () => {
    bridge.reset();
    bridges.delete(contents.id);
  });
  window.once('ready-to-show', () => window.show());
  void window.loadURL(RENDERER_URL);
  return window;
}

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.on('second-instance', () => {
    const [window] = BrowserWindow.getAllWindows();
    if (!window) return;
    if (window.isMinimized()) window.restore();
    window.focus();
  });
  app.on('web-contents-created', (_event, contents) => lockDown(contents));
  app.on('window-all-closed', () => app.quit());
  void app.whenReady().then(() => {
    let root: string;
    try {
      root = rendererRoot(DEFAULT_RENDERER_DIR);
    } catch (error) {
      dialog.showErrorBox('Vireo cannot start', (error as Error).message);
      app.quit();
      return;
    }
    protocol.handle(RENDERER_SCHEME, (request) => rendererResponse(root, request.url, request.method));
    session.defaultSession.setPermissionRequestHandler((_contents, permission, callback) =>
      callback(isPermissionAllowed(permission)),
    );
    session.defaultSession.setPermissionCheckHandler((_contents, permission) =>
      isPermissionAllowed(permission),
    );
    ipcMain.handle(IpcChannel.call, (event, method, params) => {
      const bridge = bridges.get(event.sender.id);
      const frame = event.senderFrame;
      if (!bridge || !isTrustedSender(frame?.url, frame === event.sender.mainFrame)) {
        return {
          error: { code: ErrorCode.invalidRequest, message: 'calls are taken from the Vireo window only' },
        };
      }
      return bridge.call(method, params);
    });
    app.setAboutPanelOptions({ applicationName: 'Vireo', applicationVersion: app.getVersion() });
    Menu.setApplicationMenu(Menu.buildFromTemplate(applicationMenu({ devTools })));
    createWindow();
  });
}
