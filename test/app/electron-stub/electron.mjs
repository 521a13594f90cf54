// A stand-in for the parts of Electron's main-process API that src-main/app/main.ts uses, recording
// what it is given so that the test can check it (where no Electron binary exists). State is shared
// with the test through globalThis.__electronStub.
import { tmpdir } from 'node:os';

const state = (globalThis.__electronStub ??= {
  windows: [], handlers: new Map(), appListeners: {}, contentsCreated: [], menu: null, sent: [], opened: [],
  quitCalls: 0, userData: tmpdir(), nextOpen: undefined, nextSave: undefined, permissionHandler: undefined,
});

class Emitter {
  constructor() { this.listeners = {}; }
  on(ev, fn) { (this.listeners[ev] ??= []).push(fn); return this; }
  once(ev, fn) { return this.on(ev, fn); }
  emit(ev, ...args) { for (const fn of this.listeners[ev] ?? []) fn(...args); }
}

class WebContents extends Emitter {
  constructor() {
    super();
    this.mainFrame = { url: 'file:///app/out/renderer/index.html', parent: null };
    this.session = { setPermissionRequestHandler: (fn) => { state.permissionHandler = fn; } };
  }
  setWindowOpenHandler(fn) { this.windowOpenHandler = fn; }
  send(channel, message) { state.sent.push([channel, message]); }
}

export class BrowserWindow extends Emitter {
  constructor(options) {
    super();
    this.options = options;
    this.webContents = new WebContents();
    state.windows.push(this);
    for (const fn of state.contentsCreated) fn({}, this.webContents);
  }
  static getAllWindows() { return state.windows; }
  loadFile(file) { this.loaded = file; return Promise.resolve(); }
  loadURL(url) { this.loaded = url; return Promise.resolve(); }
  show() { this.shown = (this.shown ?? 0) + 1; }
  focus() { this.focused = (this.focused ?? 0) + 1; }
  isMinimized() { return this.minimized ?? false; }
  restore() { this.minimized = false; this.restored = (this.restored ?? 0) + 1; }
  maximize() {}
  isMaximized() { return false; }
  isDestroyed() { return false; }
  getNormalBounds() { return { x: 10, y: 20, width: 1111, height: 777 }; }
}

export const app = {
  whenReady: () => Promise.resolve(),
  on(ev, fn) {
    if (ev === 'web-contents-created') state.contentsCreated.push(fn);
    (state.appListeners[ev] ??= []).push(fn);
  },
  getPath: (name) => (name === 'userData' ? state.userData : tmpdir()),
  quit() { state.quitCalls++; },
  // A test sets state.singleInstanceLock = false to play the second instance.
  requestSingleInstanceLock() { return state.singleInstanceLock ?? true; },
};

export const ipcMain = { handle(channel, fn) { state.handlers.set(channel, fn); } };
export const dialog = {
  showOpenDialog: async () => state.nextOpen ?? { canceled: true, filePaths: [] },
  showSaveDialog: async () => state.nextSave ?? { canceled: true },
};
export const Menu = { buildFromTemplate: (template) => ({ template }), setApplicationMenu: (m) => { state.menu = m; } };
export const shell = { openExternal: async (url) => { state.opened.push(url); } };
export default { app, BrowserWindow, ipcMain, dialog, Menu, shell };
