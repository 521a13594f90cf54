/**
 * Electron main process: one window, the menu, native dialogs, and the IPC door to the shared
 * handlers (serve/handlers.ts), which validate every payload. The engine worker belongs to this
 * process; quitting cancels any run and waits for the worker to stop. Kept thin on purpose.
 *
 * Security as Electron recommends: context isolation, no Node in the renderer, a sandboxed renderer,
 * the CSP in index.html, no navigation, no new windows, no permissions, and IPC only from our page.
 */
import { app, BrowserWindow, dialog, ipcMain, Menu, shell, type MenuItemConstructorOptions } from 'electron';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineClient } from '../worker/client.ts';
import { StudioHandlers } from '../serve/handlers.ts';
import type { ImageRole, MenuEvent, ServerEvent } from '../api-contract.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const IMAGE_FILTERS = [{ name: 'Images', extensions: ['jpg', 'jpeg', 'png', 'tif', 'tiff', 'webp', 'avif'] }];
const SAVE_FILTERS = { png: [{ name: 'PNG', extensions: ['png'] }], jpeg: [{ name: 'JPEG', extensions: ['jpg', 'jpeg'] }], tiff: [{ name: 'TIFF', extensions: ['tif', 'tiff'] }] };

let win: BrowserWindow | undefined;
let engine: EngineClient | undefined;
let handlers: StudioHandlers | undefined;

interface WindowState { width: number; height: number; x?: number; y?: number; maximized?: boolean }
const stateFile = () => path.join(app.getPath('userData'), 'window-state.json');

function loadWindowState(): WindowState {
  try {
    const s = JSON.parse(readFileSync(stateFile(), 'utf8')) as WindowState;
    if (s.width >= 640 && s.height >= 480) return s;
  } catch {
    // first start, or an unreadable file: the defaults
  }
  return { width: 1360, height: 860 };
}

function send(e: ServerEvent): void {
  if (win && !win.isDestroyed()) win.webContents.send('studio:event', e);
}

function createWindow(): void {
  const state = loadWindowState();
  win = new BrowserWindow({
    width: state.width,
    height: state.height,
    x: state.x,
    y: state.y,
    minWidth: 900,
    minHeight: 600,
    title: 'Style Studio',
    backgroundColor: '#111214',
    show: false,
    webPreferences: {
      preload: path.join(here, '../preload/index.cjs'),
      contextIsolation: true,
      nodeIntegration: false,
      sandbox: true,
      webSecurity: true,
    },
  });
  if (state.maximized) win.maximize();
  win.once('ready-to-show', () => win?.show());
  win.on('close', () => {
    if (!win) return;
    const b = win.getNormalBounds();
    const s: WindowState = { width: b.width, height: b.height, x: b.x, y: b.y, maximized: win.isMaximized() };
    void writeFile(stateFile(), JSON.stringify(s)).catch(() => undefined);
  });
  // No navigation away from the app and no new windows; https links open in the user's browser.
  win.webContents.on('will-navigate', (e) => e.preventDefault());
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (/^https:\/\//.test(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
  win.webContents.session.setPermissionRequestHandler((_wc, _perm, cb) => cb(false));
  if (process.env.ELECTRON_RENDERER_URL) void win.loadURL(process.env.ELECTRON_RENDERER_URL);
  else void win.loadFile(path.join(here, '../renderer/index.html'));
}

function menuAction(action: MenuEvent['action']) {
  return () => send({ type: 'menu', action });
}

function buildMenu(): void {
  const template: MenuItemConstructorOptions[] = [
    ...(process.platform === 'darwin' ? [{ role: 'appMenu' as const }] : []),
    {
      label: 'File',
      submenu: [
        { label: 'Open Photo…', accelerator: 'CmdOrCtrl+O', click: menuAction('open-content') },
        { label: 'Open Style…', accelerator: 'CmdOrCtrl+Shift+O', click: menuAction('open-style') },
        { type: 'separator' },
        { label: 'Export…', accelerator: 'CmdOrCtrl+E', click: menuAction('export') },
        { type: 'separator' },
        { role: 'quit' },
      ],
    },
    { role: 'editMenu' },
    { role: 'viewMenu' },
  ];
  Menu.setApplicationMenu(Menu.buildFromTemplate(template));
}

async function chooseImages(role: ImageRole, multiple: boolean): Promise<string[] | undefined> {
  const titles: Record<ImageRole, string> = {
    content: 'Open the photo', style: 'Open the style', contentLabels: 'Open the photo\'s label map',
    styleLabels: 'Open the style\'s label map', training: 'Choose training photos',
  };
  const r = await dialog.showOpenDialog(win!, { title: titles[role], filters: IMAGE_FILTERS, properties: multiple ? ['openFile', 'multiSelections'] : ['openFile'] });
  return r.canceled ? undefined : r.filePaths;
}

// One studio at a time: a second would write the same settings, window state and, in a batch, the
// same outputs. A second launch focuses the first window instead, and quits.
const primary = app.requestSingleInstanceLock();
if (!primary) app.quit();
app.on('second-instance', () => {
  if (!win) return;
  if (win.isMinimized()) win.restore();
  win.show();
  win.focus();
});

if (primary) void app.whenReady().then(() => {
  // The bundled worker beside this file (electron-vite's output); from the sources, the tsx entry.
  const bundled = new URL('./engine-worker.js', import.meta.url);
  engine = new EngineClient(existsSync(fileURLToPath(bundled)) ? { entry: bundled } : {});
  handlers = new StudioHandlers(engine, {
    kind: 'electron',
    emit: send,
    chooseImages,
    chooseSavePath: async (name, format) => {
      const r = await dialog.showSaveDialog(win!, { title: 'Export', defaultPath: path.join(app.getPath('pictures'), name), filters: SAVE_FILTERS[format] });
      return r.canceled ? undefined : r.filePath;
    },
    chooseWeightsFile: async () => {
      const r = await dialog.showOpenDialog(win!, { title: 'Import VGG19 weights', filters: [{ name: 'Keras .h5 or torchvision .pth', extensions: ['h5', 'hdf5', 'pth', 'pt'] }], properties: ['openFile'] });
      return r.canceled ? undefined : r.filePaths[0];
    },
    // Batch panel: the only folders a batch may read from or write to are the ones chosen here.
    chooseFolder: async (purpose) => {
      const r = await dialog.showOpenDialog(win!, purpose === 'input'
        ? { title: 'Choose the folder of photos to restyle', properties: ['openDirectory'] }
        : { title: 'Choose the folder for the results', properties: ['openDirectory', 'createDirectory', 'promptToCreate'] });
      return r.canceled ? undefined : r.filePaths[0];
    },
    // The batch's own engines, from the same worker entry as the studio's.
    makeEngine: (wasmThreads) => new EngineClient(existsSync(fileURLToPath(bundled)) ? { entry: bundled, wasmThreads } : { wasmThreads }),
  });
  ipcMain.handle('studio:call', (event, method: unknown, payload: unknown) => {
    // Only our own page may call: its top frame, showing our renderer (not a frame or page something else loaded).
    const frame = event.senderFrame;
    const ours = frame && !frame.parent && (frame.url.startsWith('file://') || (process.env.ELECTRON_RENDERER_URL && frame.url.startsWith(process.env.ELECTRON_RENDERER_URL)));
    if (!win || event.sender !== win.webContents || !ours) {
      return { ok: false, error: { code: 'BAD_ARGUMENT', message: 'request from an unknown frame' } };
    }
    return handlers!.handle(typeof method === 'string' ? method : '', payload);
  });
  buildMenu();
  createWindow();
});

app.on('web-contents-created', (_e, contents) => {
  contents.on('will-attach-webview', (e) => e.preventDefault());
});

app.on('window-all-closed', () => app.quit());

// Quitting during a run cancels it and waits for the worker to stop before the process exits.
let cleanedUp = false;
app.on('before-quit', (e) => {
  if (cleanedUp) return;
  e.preventDefault();
  cleanedUp = true;
  void (async () => {
    await handlers?.close().catch(() => undefined);
    await engine?.close().catch(() => undefined);
    app.quit();
  })();
});
