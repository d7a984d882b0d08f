// The application menu: the standard editing, view and window items (copy and paste in the console
// and the forms need the Edit menu), developer tools only outside a packaged build.

import type { MenuItemConstructorOptions } from 'electron';

export function applicationMenu(options: { devTools: boolean }): MenuItemConstructorOptions[] {
  return [
    { label: 'File', submenu: [{ role: 'quit' }] },
    { role: 'editMenu' },
    {
      label: 'View',
      submenu: [
        { role: 'reload' },
        ...(options.devTools ? ([{ role: 'forceReload' }, { role: 'toggleDevTools' }] as const) : []),
        { type: 'separator' },
        { role: 'resetZoom' },
        { role: 'zoomIn' },
        { role: 'zoomOut' },
        { type: 'separator' },
        { role: 'togglefullscreen' },
      ],
    },
    { role: 'windowMenu' },
    { label: 'Help', submenu: [{ role: 'about' }] },
  ];
}
