/**
 * First start: the two downloads that make the neural methods real (VGG19 for artistic transfer,
 * FastPhotoStyle's photo model for neural photorealistic transfer), each with its size, source and
 * licence before the download, progress, cancel and resume. It is a panel, not a dialog: colour match
 * and everything else in the window work while it is open or downloading.
 */
import { useEffect, useRef, useState } from 'react';
import type { CatalogStatus, ModelInfo, RunEvent } from '../../../src-main/api-contract.ts';
import { api, asApiError, type ApiError } from '../api.ts';
import { formatDuration, newRunId } from '../format.ts';

interface Props {
  onInstalled(models: ModelInfo[]): void;
  onError(e: ApiError): void;
  onDismiss(): void;
}

interface Download {
  runId: string;
  fraction: number;
  stage: string;
  etaMs?: number;
}

const mb = (n: number) => `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;

export function WelcomePanel({ onInstalled, onError, onDismiss }: Props) {
  const [entries, setEntries] = useState<CatalogStatus[]>();
  const [running, setRunning] = useState<Record<string, Download>>({});
  const runningRef = useRef(running);
  runningRef.current = running;
  const [notes, setNotes] = useState<Record<string, string>>({});

  const refresh = async () => setEntries(await api.call('catalog', {}));
  const onErrorRef = useRef(onError);
  onErrorRef.current = onError;
  useEffect(() => {
    api.call('catalog', {}).then(setEntries, (e) => onErrorRef.current(asApiError(e)));
  }, []);

  useEffect(() => api.onEvent((e) => {
    if (e.type !== 'progress') return;
    const ev = e as Extract<RunEvent, { type: 'progress' }>;
    const id = Object.keys(runningRef.current).find((k) => runningRef.current[k].runId === ev.runId);
    if (!id) return;
    const next = { ...runningRef.current, [id]: { ...runningRef.current[id], fraction: ev.fraction, stage: ev.stage, etaMs: ev.etaMs } };
    runningRef.current = next;
    setRunning(next);
  }), []);

  const start = async (id: CatalogStatus['id']) => {
    const runId = newRunId();
    const next = { ...runningRef.current, [id]: { runId, fraction: 0, stage: 'connecting' } };
    runningRef.current = next;
    setRunning(next);
    setNotes((n) => ({ ...n, [id]: '' }));
    try {
      await api.call('fetchModel', { runId, model: id });
      setNotes((n) => ({ ...n, [id]: 'Installed' }));
      onInstalled(await api.call('listModels', {}));
    } catch (e) {
      const err = asApiError(e);
      if (err.code === 'CANCELLED') setNotes((n) => ({ ...n, [id]: 'Paused: what arrived is kept, Resume goes on from there' }));
      else if (err.code === 'DOWNLOAD_FAILED') setNotes((n) => ({ ...n, [id]: `${err.message}${err.hint ? ` — ${err.hint}` : ''}` }));
      else onError(err);
    } finally {
      // The catalogue first (a cancelled download's bytes so far), then the row leaves its running state:
      // the note and "Resume (x MB done)" appear together, never a bare "Download" in between.
      await refresh().catch(() => {});
      const { [id]: _done, ...rest } = runningRef.current;
      runningRef.current = rest;
      setRunning(rest);
    }
  };

  const cancel = (id: string) => {
    const r = runningRef.current[id];
    if (r) void api.call('cancel', { runId: r.runId });
  };

  return (
    <section className="card welcome" data-testid="welcome" aria-label="Welcome: get the models">
      <header className="card-head">
        <h2>Welcome to Style Studio</h2>
        <span className="dim">Colour match works now, with no model. Two downloads make the neural methods real:</span>
        <span className="spacer" />
        <button type="button" className="link" onClick={onDismiss} data-testid="welcome-dismiss">Not now</button>
      </header>
      {!entries ? <p className="dim small">Checking what is installed…</p> : (
        <ul className="welcome-list">
          {entries.map((m) => {
            const r = running[m.id];
            return (
              <li key={m.id} className="welcome-row" data-testid={`welcome-${m.id}`}>
                <div className="welcome-what">
                  <strong>{m.title}</strong>
                  <span className="dim small">for {m.enables} · about {mb(m.approxBytes)}</span>
                  <span className="small">
                    Licence <a href={m.licence.url} target="_blank" rel="noreferrer">{m.licence.name}</a>
                    {!m.licence.commercialUse && <span className="warn" data-testid={`welcome-${m.id}-nc`}> — non-commercial use only</span>}
                    {' · from '}<a href={m.homepage} target="_blank" rel="noreferrer">{m.publisher}</a>
                  </span>
                  {r && (
                    <div className="welcome-progress" data-testid={`welcome-${m.id}-progress`}>
                      <div className="bar"><div style={{ width: `${Math.max(2, r.fraction * 100)}%` }} /></div>
                      <span className="dim small">{r.stage} · {Math.round(r.fraction * 100)}%{r.etaMs !== undefined ? ` · ${formatDuration(r.etaMs)} left` : ''}</span>
                    </div>
                  )}
                  {notes[m.id] && !r && <span className="small dim" data-testid={`welcome-${m.id}-note`}>{notes[m.id]}</span>}
                </div>
                <div className="welcome-action">
                  {m.installed && !r ? <span className="ok" data-testid={`welcome-${m.id}-installed`}>Installed ✓</span>
                    : r ? <button type="button" className="btn" onClick={() => cancel(m.id)} data-testid={`welcome-${m.id}-cancel`}>Cancel</button>
                      : (
                        <button type="button" className="btn primary" onClick={() => void start(m.id)} data-testid={`welcome-${m.id}-get`}
                          title={m.partialBytes > 0 ? `${mb(m.partialBytes)} already downloaded` : `Download from ${m.publisher}`}>
                          {m.partialBytes > 0 ? `Resume (${mb(m.partialBytes)} done)` : 'Download'}
                        </button>
                      )}
                </div>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
