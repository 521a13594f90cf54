/**
 * The one API object the sandboxed renderer gets, through contextBridge: a typed call into the main
 * process's handlers (which validate every payload) and a subscription to run and menu events.
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import type { ServerEvent, StudioBridge } from '../api-contract.ts';

const api: StudioBridge = {
  call: (method, payload) => ipcRenderer.invoke('studio:call', method, payload),
  onEvent: (listener) => {
    const l = (_e: IpcRendererEvent, ev: ServerEvent) => listener(ev);
    ipcRenderer.on('studio:event', l);
    return () => {
      ipcRenderer.removeListener('studio:event', l);
    };
  },
};

export type StudioApi = StudioBridge;
contextBridge.exposeInMainWorld('studio', api);
