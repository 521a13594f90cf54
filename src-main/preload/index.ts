/** The one API object the sandboxed renderer gets, through contextBridge. */
import { contextBridge, ipcRenderer } from 'electron';

const api = {
  info: (): Promise<unknown> => ipcRenderer.invoke('studio:info'),
};

export type StudioApi = typeof api;
contextBridge.exposeInMainWorld('studio', api);
