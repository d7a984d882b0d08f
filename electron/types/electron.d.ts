// The part of Electron's API that electron/ uses, declared by hand: the `electron` npm package
// downloads its binary when installed, which the build machines cannot do, and a plain
// `npm install` must not fail. Signatures are copied, narrowed, from Electron 45's electron.d.ts;
// on a machine with the real package these declarations can be dropped for its own.

declare module 'electron' {
  interface Event {
    preventDefault(): void;
  }

  interface WebFrameMain {
    readonly url: string;
  }

  interface WebPreferences {
    preload?: string;
    sandbox?: boolean;
    contextIsolation?: boolean;
    nodeIntegration?: boolean;
    nodeIntegrationInWorker?: boolean;
    nodeIntegrationInSubFrames?: boolean;
    webSecurity?: boolean;
    allowRunningInsecureContent?: boolean;
    webviewTag?: boolean;
    navigateOnDragDrop?: boolean;
    spellcheck?: boolean;
    devTools?: boolean;
  }

  interface BrowserWindowConstructorOptions {
    width?: number;
    height?: number;
    minWidth?: number;
    minHeight?: number;
    show?: boolean;
    title?: string;
    icon?: string;
    webPreferences?: WebPreferences;
  }

  interface HandlerDetails {
    url: string;
  }

  interface WindowOpenHandlerResponse {
    action: 'allow' | 'deny';
  }

  interface WebContentsWillNavigateEventParams {
    url: string;
    isMainFrame: boolean;
  }

  class WebContents {
    readonly id: number;
    readonly mainFrame: WebFrameMain;
    send(channel: string, ...args: unknown[]): void;
    isDestroyed(): boolean;
    setWindowOpenHandler(handler: (details: HandlerDetails) => WindowOpenHandlerResponse): void;
    on(
      event: 'will-navigate' | 'will-redirect',
      listener: (details: Event & WebContentsWillNavigateEventParams) => void,
    ): this;
    on(event: 'will-attach-webview', listener: (event: Event) => void): this;
    on(event: 'did-start-loading' | 'destroyed', listener: () => void): this;
  }

  class BrowserWindow {
    constructor(options?: BrowserWindowConstructorOptions);
    readonly webContents: WebContents;
    static getAllWindows(): BrowserWindow[];
    loadURL(url: string): Promise<void>;
    show(): void;
    focus(): void;
    restore(): void;
    isMinimized(): boolean;
    once(event: 'ready-to-show', listener: () => void): this;
  }

  interface MenuItemConstructorOptions {
    label?: string;
    role?:
      | 'about'
      | 'close'
      | 'editMenu'
      | 'forceReload'
      | 'minimize'
      | 'quit'
      | 'reload'
      | 'resetZoom'
      | 'toggleDevTools'
      | 'togglefullscreen'
      | 'windowMenu'
      | 'zoomIn'
      | 'zoomOut';
    type?: 'normal' | 'separator' | 'submenu';
    accelerator?: string;
    submenu?: MenuItemConstructorOptions[];
    click?: () => void;
  }

  interface Menu {}

  interface MenuStatic {
    buildFromTemplate(template: MenuItemConstructorOptions[]): Menu;
    setApplicationMenu(menu: Menu | null): void;
  }

  interface IpcMainInvokeEvent extends Event {
    readonly sender: WebContents;
    readonly senderFrame: WebFrameMain | null;
  }

  interface IpcMain {
    handle(
      channel: string,
      listener: (event: IpcMainInvokeEvent, ...args: unknown[]) => Promise<unknown> | unknown,
    ): void;
  }

  interface IpcRendererEvent extends Event {}

  interface IpcRenderer {
    invoke(channel: string, ...args: unknown[]): Promise<unknown>;
    on(channel: string, listener: (event: IpcRendererEvent, ...args: unknown[]) => void): this;
  }

  interface ContextBridge {
    exposeInMainWorld(apiKey: string, api: unknown): void;
  }

  interface Privileges {
    standard?: boolean;
    secure?: boolean;
    supportFetchAPI?: boolean;
    corsEnabled?: boolean;
    stream?: boolean;
  }

  interface CustomScheme {
    scheme: string;
    privileges?: Privileges;
  }

  interface Protocol {
    registerSchemesAsPrivileged(customSchemes: CustomScheme[]): void;
    handle(scheme: string, handler: (request: Request) => Response | Promise<Response>): void;
  }

  class Session {
    setPermissionRequestHandler(
      handler:
        | ((webContents: WebContents, permission: string, callback: (granted: boolean) => void) => void)
        | null,
    ): void;
    setPermissionCheckHandler(
      handler: ((webContents: WebContents | null, permission: string) => boolean) | null,
    ): void;
  }

  interface Dialog {
    showErrorBox(title: string, content: string): void;
  }

  interface Shell {
    openExternal(url: string): Promise<void>;
  }

  interface App {
    readonly isPackaged: boolean;
    getVersion(): string;
    requestSingleInstanceLock(): boolean;
    whenReady(): Promise<void>;
    quit(): void;
    setAboutPanelOptions(options: {
      applicationName?: string;
      applicationVersion?: string;
      website?: string;
    }): void;
    on(event: 'second-instance' | 'window-all-closed', listener: () => void): this;
    on(event: 'web-contents-created', listener: (event: Event, contents: WebContents) => void): this;
  }

  export const app: App;
  export const contextBridge: ContextBridge;
  export const dialog: Dialog;
  export const ipcMain: IpcMain;
  export const ipcRenderer: IpcRenderer;
  export const protocol: Protocol;
  export const session: { readonly defaultSession: Session };
  export const shell: Shell;
  export const Menu: MenuStatic;
  export type {
    BrowserWindowConstructorOptions,
    HandlerDetails,
    IpcMainInvokeEvent,
    MenuItemConstructorOptions,
    WindowOpenHandlerResponse,
  };
  export { BrowserWindow, WebContents };
}
