/**
 * Batch: a whole folder restyled with one style. Folders (native dialogs in the app, typed paths in
 * the browser), the style, method, preset and size, the file options; then a table of files as they
 * go, thumbnails of results, overall progress with the time left, pause, resume and cancel, and a
 * summary that lists the failures. The back end journals every file, so starting again resumes.
 *
 * Memory stays bounded on any folder: the table keeps the latest MAX_ROWS files and thumbnails for
 * the latest MAX_THUMBS (older object URLs are revoked); the counts cover every file.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import type { BatchEvent, BatchSummaryReply } from '../../../src-main/batch-contract.ts';
import type { ImageRef, StudioInfo } from '../../../src-main/api-contract.ts';
import { api, asApiError, type ApiError } from '../api.ts';
import { blobUrl, formatDuration, newRunId } from '../format.ts';
import { GATYS_PRESETS, loadSettings, MATCH_PRESETS, PHOTO_PRESETS, type Method, type PhotoEngine } from '../settings.ts';
import { Field, NumberInput, Segmented } from './Field.tsx';
import { ImagePicker, type PickedImage } from './ImagePicker.tsx';
import { useShootQueue } from './QueuePanel.tsx';
import '../batch.css';

const MAX_ROWS = 500;
const MAX_THUMBS = 200;
const SIZES = [256, 384, 512, 768, 1024, 1536, 2048];
const KEY = 'style-studio.batch.v1';

type RowState = 'running' | 'done' | 'skipped' | 'failed' | 'stopped';
interface Row { input: string; output?: string; state: RowState; code?: string; reason?: string; ms?: number; thumb?: string }
type Progress = Omit<Extract<BatchEvent, { type: 'batchProgress' }>, 'type' | 'runId'>;
type Preset = 'Subtle' | 'Balanced' | 'Strong';

interface Options {
  inDir: string;
  outDir: string;
  method: Method;
  photoEngine: PhotoEngine;
  preset: Preset;
  size: number;
  smooth: string;
  recursive: boolean;
  pattern: string;
  format: '' | 'jpeg' | 'png' | 'tiff';
  /** Photorealistic: each result at its photo's own size (default) or at the working size. */
  outputSize: 'full' | 'working';
  jobs: number;
  overwrite: 'skip' | 'replace';
}

/** The studio's method and size as a start; then the panel's own choices, remembered (the same settings resume a batch). */
function loadOptions(): Options {
  const s = loadSettings();
  const base: Options = {
    inDir: '', outDir: '', method: s.method, photoEngine: s.photoEngine, preset: 'Balanced',
    size: s.method === 'photo' && s.photoEngine === 'match' ? s.match.size : s[s.method].size,
    smooth: s.method === 'photo' && s.photoEngine === 'match' ? s.match.smooth : s.photo.smooth,
    recursive: false, pattern: '', format: '', outputSize: 'full', jobs: 1, overwrite: 'skip',
  };
  try {
    return { ...base, ...(JSON.parse(localStorage.getItem(KEY) ?? '{}') as Partial<Options>) };
  } catch {
    return base;
  }
}

/** A file's time: tenths under ten seconds (small files take about one). */
const fileTime = (ms: number) => (ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : formatDuration(ms));

const STATE_LABEL: Record<RowState, string> = { running: 'running', done: 'done', skipped: 'skipped', failed: 'failed', stopped: 'not finished' };

function picked(ref: ImageRef): PickedImage {
  return { id: ref.id, name: ref.name, width: ref.width, height: ref.height, bitDepth: ref.bitDepth, thumbUrl: blobUrl(ref.thumbnail), previewUrl: blobUrl(ref.preview) };
}

function FolderField({ label, tip, value, purpose, onChange, disabled }: {
  label: string; tip: string; value: string; purpose: 'input' | 'output'; onChange(v: string): void; disabled: boolean;
}) {
  const choose = async () => {
    const r = await api.call('batchChooseFolder', { purpose });
    if (r) onChange(r.path);
  };
  return (
    <Field label={label} tip={tip}>
      {api.native ? (
        <div className="folder-pick">
          <span className={`folder-path mono${value ? '' : ' dim'}`} title={value} data-testid={`batch-${purpose}-path`}>{value || 'No folder chosen'}</span>
          <button type="button" className="btn" disabled={disabled} onClick={() => void choose().catch(() => undefined)} data-testid={`batch-${purpose}-choose`}>Choose…</button>
        </div>
      ) : (
        <input type="text" className="text-input mono" value={value} disabled={disabled} spellCheck={false} data-testid={`batch-${purpose}`}
          placeholder={purpose === 'input' ? '/home/you/Pictures/shoot' : '/home/you/Pictures/shoot-styled'} onChange={(e) => onChange(e.target.value)} />
      )}
    </Field>
  );
}

export function BatchPanel({ info, model, photoModel, onError }: { info?: StudioInfo; model?: string; photoModel?: string; onError(e: ApiError): void }) {
  const [o, setO] = useState<Options>(loadOptions);
  const set = (v: Partial<Options>) => setO((x) => ({ ...x, ...v }));
  useEffect(() => {
    try {
      localStorage.setItem(KEY, JSON.stringify(o));
    } catch {
      // storage full or disabled: the options last for the session
    }
  }, [o]);
  const queue = useShootQueue(onError);
  const [style, setStyle] = useState<PickedImage>();
  const [styleBusy, setStyleBusy] = useState(false);
  const [run, setRun] = useState<{ runId: string; cancelling?: boolean }>();
  const runRef = useRef(run);
  runRef.current = run;
  const [progress, setProgress] = useState<Progress>();
  const [summary, setSummary] = useState<BatchSummaryReply>();
  // Rows live in a ref (insertion order = order finished); a frame-throttled tick re-renders.
  const rows = useRef(new Map<string, Row>());
  const thumbs = useRef<string[]>([]);
  const [, setTick] = useState(0);
  const frame = useRef(0);
  const redraw = useCallback(() => {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      setTick((t) => t + 1);
    });
  }, []);

  const clearRows = () => {
    for (const r of rows.current.values()) if (r.thumb) URL.revokeObjectURL(r.thumb);
    rows.current.clear();
    thumbs.current = [];
  };

  const put = useCallback((r: Row) => {
    const m = rows.current;
    const old = m.get(r.input);
    if (old?.thumb && old.thumb !== r.thumb) URL.revokeObjectURL(old.thumb);
    m.delete(r.input);
    m.set(r.input, r);
    if (r.thumb) {
      thumbs.current.push(r.input);
      // Only the latest thumbnails stay decoded; older rows keep their text.
      while (thumbs.current.length > MAX_THUMBS) {
        const k = thumbs.current.shift()!;
        const row = m.get(k);
        if (row?.thumb) {
          URL.revokeObjectURL(row.thumb);
          row.thumb = undefined;
        }
      }
    }
    while (m.size > MAX_ROWS) {
      const [first] = m.keys();
      const row = m.get(first)!;
      if (row.thumb) URL.revokeObjectURL(row.thumb);
      m.delete(first);
    }
    redraw();
  }, [redraw]);

  useEffect(() => api.onEvent((e) => {
    const r = runRef.current;
    if (!r || !('runId' in e) || e.runId !== r.runId) return;
    if (e.type === 'batchProgress') {
      const { type: _t, runId: _r, ...p } = e;
      setProgress(p);
      for (const input of p.running) if (!rows.current.has(input)) put({ input, state: 'running' });
    } else if (e.type === 'batchFile') {
      put({
        input: e.input, output: e.output, state: e.outcome, code: e.code, reason: e.reason, ms: e.ms,
        thumb: e.thumbnail ? blobUrl(e.thumbnail) : undefined,
      });
    }
  }), [put]);
  useEffect(() => () => clearRows(), []);

  const openStyle = async (files?: File[]) => {
    setStyleBusy(true);
    try {
      if (files) {
        const f = files[0];
        setStyle(picked(await api.call('uploadImage', { role: 'style', name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));
      } else {
        const refs = await api.call('openImages', { role: 'style' });
        if (refs?.[0]) setStyle(picked(refs[0]));
      }
    } catch (e) {
      onError(asApiError(e));
    } finally {
      setStyleBusy(false);
    }
  };

  const missing = !o.inDir.trim() ? 'Choose the folder of photos' : !o.outDir.trim() ? 'Choose a folder for the results' : !style ? 'Open a style image' : undefined;

  const start = async () => {
    if (!style || run) return;
    const runId = newRunId();
    clearRows();
    setSummary(undefined);
    setProgress(undefined);
    runRef.current = { runId };
    setRun(runRef.current);
    redraw();
    try {
      const gp = GATYS_PRESETS.find((p) => p.name === o.preset)?.values ?? {};
      const pp = PHOTO_PRESETS.find((p) => p.name === o.preset)?.values ?? {};
      const mp = MATCH_PRESETS.find((p) => p.name === o.preset)?.values ?? {};
      const method = o.method === 'photo' && o.photoEngine === 'match' ? 'match' : o.method;
      const smooth = o.smooth as 'exact' | 'fast' | 'none';
      const s = await api.call('batchStart', {
        runId, inDir: o.inDir.trim(), outDir: o.outDir.trim(), style: style.id, method, model: method === 'photo' ? photoModel : model,
        gatys: method === 'gatys' ? { ...gp, size: o.size } : undefined,
        photo: method === 'photo' ? { alpha: pp.alpha, size: o.size, smooth, outputSize: o.outputSize } : undefined,
        match: method === 'match' ? { ...mp, size: o.size, smooth, outputSize: o.outputSize } : undefined,
        recursive: o.recursive, pattern: o.pattern.trim() || undefined, format: o.format || undefined, jobs: o.jobs, overwrite: o.overwrite,
      });
      setSummary(s);
    } catch (e) {
      onError(asApiError(e));
    } finally {
      // Files in flight when a batch stops get no event: they are redone by the next start.
      for (const r of rows.current.values()) {
        if (r.state === 'running') Object.assign(r, { state: 'stopped', reason: 'not finished: redone when you start again' });
      }
      runRef.current = undefined;
      setRun(undefined);
      redraw();
    }
  };

  const control = (what: 'batchPause' | 'batchResume' | 'batchCancel') => {
    if (!run) return;
    if (what === 'batchCancel') setRun({ ...run, cancelling: true });
    void api.call(what, { runId: run.runId }).catch((e) => onError(asApiError(e)));
  };

  const p = progress;
  const finished = p ? p.done + p.skipped + p.failed : 0;
  const fraction = p && p.total > 0 ? finished / p.total : 0;
  const pausing = Boolean(p?.paused && p.running.length);
  const all = [...rows.current.values()];
  const shown = [...all.filter((r) => r.state === 'running'), ...all.filter((r) => r.state !== 'running').reverse()];
  const hidden = p ? Math.max(0, finished - all.filter((r) => r.state !== 'running' && r.state !== 'stopped').length) : 0;
  const status = run?.cancelling ? 'Cancelling…' : pausing ? 'Pausing…' : p?.paused ? 'Paused' : run ? 'Running' : undefined;
  const busy = Boolean(run);
  const presets = o.method === 'gatys' ? GATYS_PRESETS : o.photoEngine === 'match' ? MATCH_PRESETS : PHOTO_PRESETS;

  return (
    <div className="batch" data-testid="batch-panel">
      <aside className="sidebar">
        <section>
          <h3>Folders</h3>
          <FolderField label="Photos" purpose="input" value={o.inDir} disabled={busy} onChange={(inDir) => set({ inDir })}
            tip="The folder of photos to restyle. They are only read." />
          <FolderField label="Results" purpose="output" value={o.outDir} disabled={busy} onChange={(outDir) => set({ outDir })}
            tip="Where the results go, mirroring the photos' sub-folders. It may lie inside the photos' folder: it is never taken as input." />
          {!api.native && <p className="dim small folder-note">Folders on the computer running the studio server: type their full paths.</p>}
        </section>
        <section>
          <h3>Style</h3>
          <Segmented<Method> testId="batch-method" value={o.method} onChange={(method) => set({ method })} options={[
            { value: 'gatys', label: 'Artistic', tip: 'Each photo takes the brush strokes and textures of a painting' },
            { value: 'photo', label: 'Photorealistic', tip: 'Each photo takes the colours and light of a reference photo, and stays a photo' },
          ]} />
          {o.method === 'photo' && (
            <Segmented<PhotoEngine> testId="batch-photo-engine" value={o.photoEngine} onChange={(photoEngine) => set({ photoEngine, smooth: photoEngine === 'match' ? 'fast' : loadSettings().photo.smooth })} options={[
              { value: 'match', label: 'Colour match', tip: 'No model needed; a fraction of a second a photo' },
              { value: 'neural', label: 'Neural (PhotoWCT)', tip: 'Needs VGG19 weights with PhotoWCT decoders' },
            ]} />
          )}
          <div className="batch-style">
            <ImagePicker label={o.method === 'photo' ? 'Reference photo' : 'Painting'} hint="The style for every photo of the folder" testId="batch-style"
              image={style} busy={styleBusy} onClear={busy ? undefined : () => setStyle(undefined)}
              onFiles={(f) => void openStyle(f)} onNativeOpen={api.native ? () => void openStyle() : undefined} />
          </div>
        </section>
        <section>
          <h3>Settings</h3>
          <div className="controls">
            <div className="presets" role="group" aria-label="Presets" data-testid="batch-preset">
              {presets.map((pr) => (
                <button key={pr.name} type="button" className={`chip${o.preset === pr.name ? ' on' : ''}`} title={pr.tip} onClick={() => set({ preset: pr.name as Preset })}>{pr.name}</button>
              ))}
            </div>
            <Field label={o.method === 'photo' ? 'Working size' : 'Size'} tip={o.method === 'photo' ? 'Longest side the look is computed at, in pixels; results are carried to full resolution unless chosen below.' : 'Longest side of each result, in pixels. Larger takes longer.'} value={`${o.size} px`}>
              <div className="row">
                <select value={SIZES.includes(o.size) ? o.size : ''} onChange={(e) => set({ size: Number(e.target.value) })} aria-label="Size preset">
                  {!SIZES.includes(o.size) && <option value="">custom</option>}
                  {SIZES.map((s) => <option key={s} value={s}>{s} px</option>)}
                </select>
                <NumberInput value={o.size} min={16} max={16384} onChange={(size) => set({ size })} testId="batch-size" />
              </div>
            </Field>
            {o.method === 'photo' && (
              <Field label="Result size" tip="Full resolution: the look is computed at the size above, then carried to every pixel of each photo (its own detail, the look's colours).">
                <select value={o.outputSize} onChange={(e) => set({ outputSize: e.target.value as Options['outputSize'] })} data-testid="batch-output-size">
                  <option value="full">Full resolution</option><option value="working">The size above</option>
                </select>
              </Field>
            )}
            {o.method === 'photo' && (
              <Field label={o.photoEngine === 'match' ? 'Regrain' : 'Smoothing'} tip="The step that keeps results photographic: exact is the closed-form solve, fast is many times quicker.">
                <select value={o.smooth} onChange={(e) => set({ smooth: e.target.value })} data-testid="batch-smooth">
                  {(info?.smoothModes ?? [o.smooth]).map((m) => <option key={m} value={m}>{m}</option>)}
                </select>
              </Field>
            )}
          </div>
        </section>
        <section>
          <h3>Files</h3>
          <div className="controls">
            <label className="toggle" title="Take the photos in sub-folders too; results mirror the sub-folders">
              <input type="checkbox" checked={o.recursive} disabled={busy} onChange={(e) => set({ recursive: e.target.checked })} data-testid="batch-recursive" />
              <span>Include sub-folders</span>
            </label>
            <Field label="Only files matching" tip="A pattern on file names, such as *.jpg or IMG_*.{jpg,png}. Empty: every image.">
              <input type="text" className="text-input mono" value={o.pattern} placeholder="every image" spellCheck={false} disabled={busy}
                onChange={(e) => set({ pattern: e.target.value })} data-testid="batch-pattern" />
            </Field>
            <div className="batch-two">
              <Field label="Format" tip="The results' format: the photo's own, or one for all.">
                <select value={o.format} onChange={(e) => set({ format: e.target.value as Options['format'] })} data-testid="batch-format">
                  <option value="">Same as photo</option><option value="jpeg">JPEG</option><option value="png">PNG</option><option value="tiff">TIFF</option>
                </select>
              </Field>
              <Field label="Side by side" tip="Photos processed at once, each by its own engine sharing the cores. 1 is best on a GPU.">
                <NumberInput value={o.jobs} min={1} max={16} onChange={(jobs) => set({ jobs: Math.max(1, Math.min(16, Math.round(jobs))) })} testId="batch-jobs" />
              </Field>
            </div>
            <Field label="Results already in the folder" tip="A result the batch's journal does not know: keep it, or redo it. Results this batch finished are always kept.">
              <Segmented<'skip' | 'replace'> testId="batch-overwrite" value={o.overwrite} onChange={(overwrite) => set({ overwrite })}
                options={[{ value: 'skip', label: 'Keep', tip: 'Leave them as they are' }, { value: 'replace', label: 'Redo', tip: 'Restyle those photos again' }]} />
            </Field>
          </div>
        </section>
        <div className="actions">
          {run ? (
            <>
              {p?.paused
                ? <button type="button" className="btn wide" disabled={run.cancelling} onClick={() => control('batchResume')} data-testid="batch-resume">Resume</button>
                : <button type="button" className="btn wide" disabled={run.cancelling} onClick={() => control('batchPause')} data-testid="batch-pause"
                  title="Finish the photos in progress, then wait">Pause</button>}
              <button type="button" className="btn danger wide" disabled={run.cancelling} onClick={() => control('batchCancel')} data-testid="batch-cancel"
                title="Stop now. What is done stays done: Start again with the same settings to resume.">Cancel</button>
            </>
          ) : (
            <button type="button" className="btn primary wide" disabled={Boolean(missing)} title={missing ?? 'Restyle every photo of the folder'}
              onClick={() => void start()} data-testid="batch-start">Start batch</button>
          )}
        </div>
        {queue.controls}
      </aside>

      <div className="batch-content">
        {queue.view}
        {!p && !summary && !run && !queue.view && (
          <div className="empty-state batch-empty">
            <div className="empty-art" aria-hidden="true" />
            <h2>Restyle a whole folder</h2>
            <p>Choose the folder of photos, where the results go and a style, then Start.</p>
            <p className="dim">Every photo is recorded in a journal in the results folder: after a cancel, a crash or a restart, Start with the same settings resumes and skips what is done.</p>
            {missing && <p className="dim small">{missing} to begin.</p>}
          </div>
        )}

        {(run || p) && (
          <section className="card batch-progress" data-testid="batch-progress" role="status" aria-live="polite">
            <div className="row">
              <strong data-testid="batch-status">{status ?? (summary?.stopped ? (summary.stopped.code === 'CANCELLED' ? 'Cancelled' : 'Stopped') : 'Finished')}</strong>
              <span className="dim" data-testid="batch-counts">
                {p ? `${finished} of ${p.total} files` : 'reading the folder…'}
              </span>
              <span className="spacer" />
              <span className="dim" data-testid="batch-eta">
                {run && p?.etaMs !== undefined && !p.paused ? `about ${formatDuration(p.etaMs)} left` : p ? `${formatDuration(p.elapsedMs)} elapsed` : ''}
              </span>
            </div>
            <div className={`bar${p?.paused ? ' paused' : ''}`}><div style={{ width: `${Math.max(run ? 2 : 0, fraction * 100)}%` }} /></div>
            {p && (
              <div className="batch-tally">
                <span className="tally done">{p.done} done</span>
                <span className="tally skipped">{p.skipped} skipped</span>
                <span className="tally failed">{p.failed} failed</span>
                {run && <span className="tally running">{p.running.length} running</span>}
                {run && <span className="tally">{Math.max(0, p.total - finished - p.running.length)} waiting</span>}
              </div>
            )}
            {run && <p className="dim small batch-note">Cancel keeps the journal: Start again with the same settings to resume; finished photos are skipped.</p>}
          </section>
        )}

        {summary && !run && (
          <section className={`card batch-summary${summary.stopped ? ' stopped' : summary.failedCount ? ' warn' : ' ok'}`} data-testid="batch-summary">
            <header className="card-head">
              <h2>{summary.stopped ? (summary.stopped.code === 'CANCELLED' ? 'Batch cancelled' : 'Batch stopped') : summary.failedCount ? 'Batch finished, with failures' : 'Batch finished'}</h2>
              <span className="dim">{formatDuration(summary.ms)}</span>
            </header>
            <p className="note">
              {summary.done} restyled, {summary.skipped} already done, {summary.failedCount} failed{summary.total ? ` of ${summary.total}` : ''}.
              {' '}Results in <span className="mono">{summary.outDir}</span>.
            </p>
            {summary.stopped && (
              <p className="note batch-stop">
                {summary.stopped.code === 'CANCELLED'
                  ? 'What is done is kept in the journal: Start again with the same settings to resume.'
                  : `${summary.stopped.message}${summary.stopped.hint ? ` — ${summary.stopped.hint}` : ''}. Start again to resume.`}
              </p>
            )}
            {summary.failedCount > 0 && (
              <ul className="batch-failures" data-testid="batch-failures">
                {summary.failed.map((f) => (
                  // Most reasons begin with the file's name: then the name is shown once.
                  <li key={f.input}>
                    <span className="mono">{f.input}</span>
                    <span className="dim">{f.reason.startsWith(`${f.input} `) ? f.reason.slice(f.input.length) : ` — ${f.reason}`}</span>
                  </li>
                ))}
                {summary.failedCount > summary.failed.length && <li className="dim">… and {summary.failedCount - summary.failed.length} more (see the journal)</li>}
              </ul>
            )}
          </section>
        )}

        {shown.length > 0 && (
          <section className="card batch-files">
            <table className="table batch-table" data-testid="batch-table">
              <thead><tr><th className="thumb-col">Result</th><th>Photo</th><th>State</th><th className="num">Time</th></tr></thead>
              <tbody>
                {shown.map((r) => (
                  <tr key={r.input} data-testid="batch-row" data-state={r.state} data-input={r.input}>
                    <td className="thumb-col">{r.thumb ? <img src={r.thumb} alt={`Result of ${r.input}`} /> : <span className={`thumb-empty ${r.state}`} />}</td>
                    <td className="file-col">
                      <div className="file-name" title={r.input}>{r.input}</div>
                      {r.state === 'failed'
                        ? <div className="file-reason" data-testid="batch-reason">{r.reason}</div>
                        : r.state === 'stopped'
                          ? <div className="file-out dim">{r.reason}</div>
                          : r.output && <div className="file-out dim" title={r.output}>→ {r.output}{r.state === 'skipped' && r.reason ? ` · ${r.reason}` : ''}</div>}
                    </td>
                    <td><span className={`state ${r.state}`}>{STATE_LABEL[r.state]}</span></td>
                    <td className="num dim">{r.ms !== undefined ? fileTime(r.ms) : ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {hidden > 0 && <p className="dim small batch-more">… {hidden} earlier file{hidden === 1 ? '' : 's'} not listed (counted above).</p>}
          </section>
        )}
      </div>
    </div>
  );
}
