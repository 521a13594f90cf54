/**
 * Electron main process: one window, and the IPC handlers that forward the renderer's requests to
 * the engine worker. Kept thin: validation, files and compute live elsewhere.
 */
import { app, BrowserWindow, ipcMain, shell } from 'electron';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineClient } from '../worker/client.ts';
import { serializeError } from '../errors.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
let engine: EngineClient | undefined;

function createWindow(): void {
  const win = new BrowserWindow({
    width: 1200,
    height: 800,
    title: 'Style Studio',
    webPreferences: {
      preload: path.join(here, '../preload/index.cjs'),
      contextIsolation: true,
      nodeIntegration: false,
      sandbox: true,
    },
  });
  // No navigation away from the app and no new windows; links open in the user's browser.
  win.webContents.on('will-navigate', (e) => e.preventDefault());
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (/^https:\/\//.test(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
  if (process.env.ELECTRON_RENDERER_URL) void win.loadURL(process.env.ELECTRON_RENDERER_URL);
  else void win.loadFile(path.join(here, '../renderer/index.html'));
}

void app.whenReady().then(() => {
  engine = new EngineClient({ entry: new URL('./engine-worker.js', import.meta.url) });
  ipcMain.handle('studio:info', async () => {
    try {
      return { ok: true, value: await engine!.run({ kind: 'info' }).result };
    } catch (e) {
      return { ok: false, error: serializeError(e) };
    }
  });
  createWindow();
});

app.on('window-all-closed', () => app.quit());
app.on('will-quit', () => void engine?.close());
