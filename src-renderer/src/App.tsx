/**
 * The studio window: inputs and controls on the left, the result in the middle, the status bar
 * below. Runs go preview (small, seconds) → full size; progress, intermediate images and results
 * stream in as events. A failed run keeps the images and settings; Cancel returns control at once.
 */
import { useCallback, useEffect, useRef, useState, type DragEvent } from 'react';
import type { ImageRef, ImageRole, RunResult, ServerEvent, StudioInfo, StylizeRequest } from '../../src-main/api-contract.ts';
import { api, asApiError, type ApiError } from './api.ts';
import { blobUrl, ERROR_TITLES, formatBytes, formatDuration, newRunId, nextStep } from './format.ts';
import { DEFAULTS, loadSettings, saveSettings, type GatysSettings, type MatchSettings, type Method, type PhotoEngine, type PhotoSettings, type Settings } from './settings.ts';
import { ImagePicker, type PickedImage } from './components/ImagePicker.tsx';
import { GatysControls, MatchControls, PhotoControls } from './components/Controls.tsx';
import { fitLongestSide, memoryFit, shortfall, WORKING_MEMORY } from '../../src-main/engine/memory.ts';
import { Segmented } from './components/Field.tsx';
import { Viewer, type ViewImages } from './components/Viewer.tsx';
import { ExportDialog, type ExportChoice } from './components/ExportDialog.tsx';
import { ModelsPanel } from './components/ModelsPanel.tsx';
import { BatchPanel } from './components/BatchPanel.tsx';
import { WelcomePanel } from './components/WelcomePanel.tsx';

type Slot = 'content' | 'styles' | 'contentLabels' | 'styleLabels';

interface Images {
  content?: PickedImage;
  styles: PickedImage[];
  contentLabels?: PickedImage;
  styleLabels?: PickedImage;
}

interface RunState {
  runId: string;
  method: Method;
  phase?: 'preview' | 'full';
  stage: string;
  fraction: number;
  iteration?: number;
  iterations?: number;
  etaMs?: number;
  startedAt: number;
  live?: string;
}

interface ShownResult extends RunResult {
  beforeUrl: string;
  afterUrl: string;
}

/** The window's own advice where it has a better action than the engine's (command-line) hint. */
function whatNext(e: ApiError): string {
  const own = nextStep(e.code);
  if (own && (e.code === 'MODEL_MISSING' || e.code === 'BAD_MODEL' || !e.hint)) return own;
  return `${e.hint![0].toUpperCase()}${e.hint!.slice(1)}.`;
}

function picked(ref: ImageRef): PickedImage {
  return { id: ref.id, name: ref.name, width: ref.width, height: ref.height, bitDepth: ref.bitDepth, thumbUrl: blobUrl(ref.thumbnail), previewUrl: blobUrl(ref.preview) };
}

export function App() {
  const [info, setInfo] = useState<StudioInfo>();
  const [settings, setSettings] = useState<Settings>(loadSettings);
  const [images, setImages] = useState<Images>({ styles: [] });
  const [busySlot, setBusySlot] = useState<Slot>();
  const [run, setRun] = useState<RunState>();
  const runRef = useRef<RunState>(undefined);
  runRef.current = run;
  const [result, setResult] = useState<ShownResult>();
  const [error, setError] = useState<ApiError>();
  const [notice, setNotice] = useState<string>();
  const [tab, setTab] = useState<'studio' | 'models' | 'batch'>('studio');
  const [zoom, setZoom] = useState<'fit' | '100'>('fit');
  const [exporting, setExporting] = useState<'open' | 'busy'>();
  const [log, setLog] = useState<string[]>([]);
  /** Blend weights of several paintings, by image id (equal when unset). */
  const [blend, setBlend] = useState<Record<string, number>>({});

  useEffect(() => saveSettings(settings), [settings]);
  /** First start: the catalogue's models are not all installed, so the welcome panel offers them. */
  const [welcome, setWelcome] = useState(false);
  useEffect(() => {
    api.call('info', {}).then((i) => {
      setInfo(i);
      setWelcome(!['vgg19', 'photowct'].every((n) => i.models.some((m) => m.name === n)));
    }, (e) => setError(asApiError(e)));
  }, []);

  const fail = useCallback((e: unknown) => setError(asApiError(e)), []);

  // Engine events: progress, intermediate images and results of the current run; menu commands.
  const menuRef = useRef<(a: string) => void>(undefined);
  useEffect(() => api.onEvent((e: ServerEvent) => {
    if (e.type === 'menu') {
      menuRef.current?.(e.action);
      return;
    }
    const r = runRef.current;
    if (!r || e.runId !== r.runId) return;
    if (e.type === 'progress') {
      setRun({ ...r, phase: e.phase ?? r.phase, stage: e.stage, fraction: e.fraction, iteration: e.iteration, iterations: e.iterations, etaMs: e.etaMs });
    } else if (e.type === 'preview') {
      if (r.live) URL.revokeObjectURL(r.live);
      setRun({ ...r, live: blobUrl(e.image) });
    } else if (e.type === 'result') {
      setResult((old) => {
        if (old) { URL.revokeObjectURL(old.beforeUrl); URL.revokeObjectURL(old.afterUrl); }
        return { ...e.result, beforeUrl: blobUrl(e.result.before), afterUrl: blobUrl(e.result.after) };
      });
      if (r.live) URL.revokeObjectURL(r.live);
      setRun({ ...r, live: undefined });
    } else if (e.type === 'log') {
      setLog((l) => [...l.slice(-20), e.message]);
    }
  }), []);

  const setPicked = (slot: Slot, p: PickedImage | undefined) => setImages((im) => (
    slot === 'styles'
      ? { ...im, styles: p ? (settings.method === 'gatys' ? [...im.styles, p].slice(-4) : [p]) : [] }
      : { ...im, [slot]: p }
  ));

  const roleOf = (slot: Slot): ImageRole => (slot === 'styles' ? 'style' : slot);

  const upload = async (slot: Slot, files: File[]) => {
    setBusySlot(slot);
    try {
      for (const f of files) {
        const ref = await api.call('uploadImage', { role: roleOf(slot), name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) });
        setPicked(slot, picked(ref));
        if (ref.notes.length) setNotice(`${ref.name}: ${ref.notes.join('; ')}`);
      }
      setError(undefined);
    } catch (e) {
      fail(e);
    } finally {
      setBusySlot(undefined);
    }
  };

  const openNative = async (slot: Slot) => {
    setBusySlot(slot);
    try {
      const refs = await api.call('openImages', { role: roleOf(slot) });
      for (const ref of refs ?? []) setPicked(slot, picked(ref));
      if (refs) setError(undefined);
    } catch (e) {
      fail(e);
    } finally {
      setBusySlot(undefined);
    }
  };

  const pickerProps = (slot: Slot) => ({
    onFiles: (f: File[]) => void upload(slot, f),
    onNativeOpen: api.native ? () => void openNative(slot) : undefined,
    busy: busySlot === slot,
  });

  const method = settings.method;
  // Artistic runs need a whole VGG19 (FastPhotoStyle's encoder stops at relu4_1); the neural photo mode
  // needs an encoder with all four decoders: the chosen model where it fits, else the installed one that does.
  const models = info?.models ?? [];
  const chosen = models.find((m) => m.name === settings.model);
  const artisticModel = (chosen && !chosen.depth ? chosen : models.find((m) => m.name === 'vgg19' && !m.depth) ?? models.find((m) => !m.depth))?.name;
  const photoModel = (chosen?.decoders.length === 4 ? chosen : models.find((m) => m.name === 'photowct' && m.decoders.length === 4) ?? models.find((m) => m.decoders.length === 4))?.name;
  // colour match needs nothing.
  const neuralReady = Boolean(photoModel);
  const photoEngine: PhotoEngine = settings.photoEngine === 'neural' && neuralReady ? 'neural' : 'match';
  /** What the engine runs: artistic, neural photorealistic, or colour match. */
  const engineMethod = method === 'gatys' ? 'gatys' : photoEngine === 'neural' ? 'photo' : 'match';
  const model = engineMethod === 'photo' ? photoModel : artisticModel;
  // The engine's own estimate (engine/memory.ts), before Stylize: a size this machine cannot run is said here, with one that fits.
  const memoryWarning = (() => {
    if (!info?.memory || !images.content) return undefined;
    const size = settings[engineMethod].size;
    const { width, height } = fitLongestSide(images.content.width, images.content.height, size);
    const fit = memoryFit(WORKING_MEMORY[engineMethod], width, height, info.memory);
    if (fit.ok) return undefined;
    return `At ${width}×${height} px this ${shortfall(fit)}: ${fit.side} px or less fits.`;
  })();
  const styleCountOk = method === 'gatys' ? images.styles.length >= 1 : images.styles.length === 1;
  const ready = Boolean(images.content && styleCountOk && !run);

  const blendWeights = (): number[] | undefined => {
    const w = images.styles.map((st) => blend[st.id] ?? 1);
    return w.length > 1 && w.some((x) => x > 0) ? w : undefined;
  };

  // A file dropped anywhere on the picture area: the photo first, then paintings / the reference.
  const dropOnViewer = (e: DragEvent) => {
    e.preventDefault();
    const files = Array.from(e.dataTransfer.files);
    if (files.length) void upload(images.content ? 'styles' : 'content', files.slice(0, 1));
  };

  const start = async (phases: 'preview' | 'both') => {
    if (!images.content || !ready) return;
    const runId = newRunId();
    const state: RunState = { runId, method, stage: 'starting', fraction: 0, startedAt: Date.now(), phase: 'preview' };
    setRun(state);
    runRef.current = state;
    setError(undefined);
    setNotice(undefined);
    setLog([]);
    const labels = method === 'photo' && images.contentLabels && images.styleLabels ? { contentLabels: images.contentLabels.id, styleLabels: images.styleLabels.id } : {};
    try {
      const r = await api.call('stylize', {
        runId, method: engineMethod, content: images.content.id, styles: images.styles.map((s) => s.id), model, phases, ...labels,
        gatys: engineMethod === 'gatys'
          ? { ...settings.gatys, styleWeights: blendWeights() }
          : undefined,
        photo: engineMethod === 'photo' ? { ...settings.photo, smooth: settings.photo.smooth as NonNullable<StylizeRequest['photo']>['smooth'] } : undefined,
        match: engineMethod === 'match' ? settings.match : undefined,
      });
      if (runRef.current?.runId === runId) setNotice(`${r.phase === 'preview' ? 'Preview' : 'Full size'} ready: ${r.width}×${r.height} in ${formatDuration(r.totalMs)} on ${r.backend}`);
    } catch (e) {
      const err = asApiError(e);
      // A cancelled run has already given the controls back (below); anything else is shown.
      if (err.code !== 'CANCELLED' && runRef.current?.runId === runId) setError(err);
    } finally {
      if (runRef.current?.runId === runId) {
        runRef.current = undefined;
        setRun(undefined);
      }
    }
  };

  const cancel = () => {
    const r = runRef.current;
    if (!r) return;
    void api.call('cancel', { runId: r.runId }).catch(() => undefined);
    runRef.current = undefined;
    setRun(undefined);
    setNotice('Cancelled');
  };

  const doExport = async (c: ExportChoice) => {
    if (!result) return;
    setExporting('busy');
    try {
      const r = await api.call('exportResult', { resultId: result.resultId, format: c.format, bitDepth: c.bitDepth, quality: c.format === 'jpeg' ? c.quality : undefined, size: c.size });
      if (r?.bytes) {
        const a = document.createElement('a');
        a.href = blobUrl(r.bytes, r.format === 'png' ? 'image/png' : r.format === 'tiff' ? 'image/tiff' : 'image/jpeg');
        a.download = r.name;
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
      }
      if (r) setNotice(`Exported ${r.path ?? r.name} (${r.width}×${r.height}, ${formatBytes(r.size)}, ${r.bitDepth}-bit ${r.format.toUpperCase()})${r.notes.length ? ` — ${r.notes.join('; ')}` : ''}`);
      setExporting(undefined);
    } catch (e) {
      setExporting('open');
      fail(e);
    }
  };

  menuRef.current = (action: string) => {
    if (action === 'open-content') void openNative('content');
    else if (action === 'open-style') void openNative('styles');
    else if (action === 'export' && result) setExporting('open');
  };

  const setGatys = (v: Partial<GatysSettings>) => setSettings((s) => ({ ...s, gatys: { ...s.gatys, ...v } }));
  const setPhoto = (v: Partial<PhotoSettings>) => setSettings((s) => ({ ...s, photo: { ...s.photo, ...v } }));
  const setMatch = (v: Partial<MatchSettings>) => setSettings((s) => ({ ...s, match: { ...s.match, ...v } }));
  const setMethod = (m: Method) => {
    setSettings((s) => ({ ...s, method: m }));
    if (m === 'photo') setImages((im) => ({ ...im, styles: im.styles.slice(-1) }));
  };

  // What the viewer shows: the live intermediate image while running, else the last result,
  // else the photo on its own.
  const view: ViewImages | undefined = run?.live
    ? { before: result?.beforeUrl, after: run.live, width: result?.width ?? images.content?.width ?? 1, height: result?.height ?? images.content?.height ?? 1, label: run.iteration !== undefined && run.iterations ? `Working… step ${run.iteration} of ${run.iterations}` : 'Working…' }
    : result
      ? { before: result.beforeUrl, after: result.afterUrl, width: result.width, height: result.height, label: `${run ? 'Previous result · ' : ''}${result.phase === 'preview' ? 'Preview' : 'Full size'} · ${result.width}×${result.height} px` }
      : images.content
        ? { after: images.content.previewUrl, width: images.content.width, height: images.content.height, label: `${images.content.name} · ${images.content.width}×${images.content.height} px` }
        : undefined;

  const elapsed = run ? Date.now() - run.startedAt : 0;
  const overlay = run && (
    <div className="progress-card" data-testid="progress" role="status" aria-live="polite">
      <div className="row">
        <span className={`phase ${run.phase ?? 'preview'}`}>{run.phase === 'full' ? 'Full size' : 'Preview'}</span>
        <span className="stage-name" data-testid="stage">{run.stage}</span>
        <span className="spacer" />
        <span className="pct" data-testid="percent">{Math.round(run.fraction * 100)}%</span>
      </div>
      <div className="bar"><div style={{ width: `${Math.max(2, run.fraction * 100)}%` }} /></div>
      <div className="row dim small">
        <span>{run.iteration !== undefined && run.iterations ? `step ${run.iteration} of ${run.iterations}` : ' '}</span>
        <span className="spacer" />
        <span data-testid="eta">{run.etaMs !== undefined ? `about ${formatDuration(run.etaMs)} left` : `${formatDuration(elapsed)} elapsed`}</span>
      </div>
    </div>
  );

  const contentPicker = (
    <ImagePicker label="Photo" hint="The photo to restyle (JPEG, PNG, TIFF, WebP). Drop it here or click." testId="pick-content"
      image={images.content} onClear={() => setImages((im) => ({ ...im, content: undefined }))} {...pickerProps('content')} />
  );

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand"><span className="logo" aria-hidden="true" />Style Studio</div>
        <nav className="tabs" role="tablist">
          <button type="button" role="tab" aria-selected={tab === 'studio'} className={tab === 'studio' ? 'on' : ''} onClick={() => setTab('studio')}>Studio</button>
          <button type="button" role="tab" aria-selected={tab === 'models'} className={tab === 'models' ? 'on' : ''} onClick={() => setTab('models')} data-testid="tab-models">Models</button>
          <button type="button" role="tab" aria-selected={tab === 'batch'} className={tab === 'batch' ? 'on' : ''} onClick={() => setTab('batch')} data-testid="tab-batch">Batch</button>
        </nav>
        <span className="spacer" />
        {tab === 'studio' && (
          <>
            <Segmented<'fit' | '100'> testId="zoom" options={[{ value: 'fit', label: 'Fit', tip: 'Fit the image to the window' }, { value: '100', label: '100%', tip: 'One image pixel per screen pixel' }]} value={zoom} onChange={setZoom} />
            <button type="button" className="btn" disabled={!result || Boolean(exporting)} onClick={() => setExporting('open')} data-testid="export" title="Save the result with the photo's metadata">Export…</button>
          </>
        )}
      </header>

      {error && (
        <div className="error-banner" role="alert" data-testid="error">
          <div>
            <strong>{ERROR_TITLES[error.code] ?? 'Error'}</strong>
            <span className="error-msg">{error.message}</span>
            {(error.hint || nextStep(error.code)) && <div className="error-next">{whatNext(error)}</div>}
          </div>
          <button type="button" className="icon-btn" aria-label="Dismiss" onClick={() => setError(undefined)}>×</button>
        </div>
      )}

      {/* Mounted while another tab shows: a download in progress keeps its progress and Cancel. */}
      {welcome && !settings.welcomeDismissed && (
        <div className="welcome-wrap" hidden={tab !== 'studio'}>
          <WelcomePanel onError={setError} onDismiss={() => setSettings((st) => ({ ...st, welcomeDismissed: true }))}
            onInstalled={(models) => setInfo((i) => (i ? { ...i, models } : i))} />
        </div>
      )}

      {/* Both panels stay mounted: a training run or a half-set form survives a switch of tab. */}
      <main className="models-main" hidden={tab !== 'models'}>
        <ModelsPanel models={info?.models ?? []} modelsDir={info?.modelsDir ?? ''} onError={setError}
          onChanged={(models) => setInfo((i) => (i ? { ...i, models } : i))} />
      </main>
      <main className="batch-main" hidden={tab !== 'batch'}>
        <BatchPanel info={info} model={artisticModel} photoModel={photoModel} onError={setError} />
      </main>
      <main className="workspace" hidden={tab !== 'studio'}>
          <aside className="sidebar">
            <section>
              <h3>Method</h3>
              <Segmented<Method> testId="method" value={method} onChange={setMethod} options={[
                { value: 'gatys', label: 'Artistic', tip: 'Gatys et al.: the photo takes the brush strokes and textures of a painting' },
                { value: 'photo', label: 'Photorealistic', tip: 'The photo takes the colours and light of another photo, and stays a photo' },
              ]} />
              {method === 'photo' && (
                <>
                  <Segmented<PhotoEngine> testId="photo-engine" value={photoEngine} onChange={(photoEngine) => setSettings((s) => ({ ...s, photoEngine }))} options={[
                    { value: 'match', label: 'Colour match', tip: "The reference's colour distribution moved onto the photo, then the photo's own detail given back: no model needed" },
                    { value: 'neural', label: 'Neural (PhotoWCT)', tip: neuralReady ? 'PhotoWCT in VGG19 auto-encoders, then the smoothing step' : 'Needs VGG19 weights with the four PhotoWCT decoders (Models panel)' },
                  ]} />
                  {!neuralReady && (
                    <p className="dim small" data-testid="neural-needs">Neural mode needs FastPhotoStyle's photo model (download it above or in Models) or VGG19 weights with trained decoders. Colour match needs no model.</p>
                  )}
                </>
              )}
            </section>
            <section>
              <h3>Images</h3>
              {contentPicker}
              {images.styles.map((s, i) => (
                <ImagePicker key={s.id} label={method === 'gatys' ? `Painting${images.styles.length > 1 ? ` ${i + 1}` : ''}` : 'Reference photo'}
                  hint="The style: replace it by dropping another image" testId={`pick-style-${i}`} image={s}
                  onClear={() => setImages((im) => ({ ...im, styles: im.styles.filter((x) => x.id !== s.id) }))}
                  onFiles={(f) => void upload('styles', f)} onNativeOpen={api.native ? () => void openNative('styles') : undefined} />
              ))}
              {method === 'gatys' && images.styles.length > 1 && (
                <div className="blend" role="group" aria-label="Blend of the paintings">
                  {images.styles.map((st, i) => {
                    const total = images.styles.reduce((a, x) => a + (blend[x.id] ?? 1), 0) || 1;
                    return (
                      <label key={st.id} className="blend-row" title={`How much of ${st.name} goes into the blend`}>
                        <span>Painting {i + 1}</span>
                        <input type="range" min={0} max={1} step={0.05} value={blend[st.id] ?? 1} aria-label={`Weight of painting ${i + 1}`}
                          onChange={(e) => setBlend((b) => ({ ...b, [st.id]: Number(e.target.value) }))} />
                        <span className="field-value">{Math.round(((blend[st.id] ?? 1) / total) * 100)}%</span>
                      </label>
                    );
                  })}
                </div>
              )}
              {(images.styles.length === 0 || (method === 'gatys' && images.styles.length < 4)) && (
                <ImagePicker label={method === 'gatys' ? (images.styles.length ? 'Blend another painting' : 'Painting') : 'Reference photo'}
                  hint={method === 'gatys' ? 'The painting whose style to take; add more to blend them' : 'The photo whose colours and light to take'}
                  testId="pick-style" compact={images.styles.length > 0} {...pickerProps('styles')} />
              )}
              {method === 'photo' && (
                <details className="more" open={Boolean(images.contentLabels || images.styleLabels)}>
                  <summary>Label maps (optional)</summary>
                  <p className="dim small">Colour-coded regions (sky, buildings…) so each region takes the look of the same region in the reference.</p>
                  <ImagePicker label="Photo regions" hint="A label map of the photo" testId="pick-content-labels" compact image={images.contentLabels}
                    onClear={() => setImages((im) => ({ ...im, contentLabels: undefined }))} {...pickerProps('contentLabels')} />
                  <ImagePicker label="Reference regions" hint="A label map of the reference photo" testId="pick-style-labels" compact image={images.styleLabels}
                    onClear={() => setImages((im) => ({ ...im, styleLabels: undefined }))} {...pickerProps('styleLabels')} />
                </details>
              )}
            </section>
            <section>
              <h3>Settings <button type="button" className="link" title="Back to the defaults" onClick={() => setSettings((s) => ({ ...s, gatys: DEFAULTS.gatys, photo: DEFAULTS.photo, match: DEFAULTS.match }))}>reset</button></h3>
              {engineMethod === 'gatys'
                ? <GatysControls s={settings.gatys} set={setGatys} sizeWarning={memoryWarning} />
                : engineMethod === 'match'
                  ? <MatchControls s={settings.match} set={setMatch} sizeWarning={memoryWarning} />
                  : <PhotoControls s={settings.photo} set={setPhoto} smoothModes={info?.smoothModes ?? [settings.photo.smooth]} sizeWarning={memoryWarning} />}
              {info && info.models.length > 1 && (
                <label className="field" title="The VGG19 weights to use">
                  <span className="field-label">Model</span>
                  <select value={model} onChange={(e) => setSettings((s) => ({ ...s, model: e.target.value }))}>
                    {info.models.map((m) => <option key={m.name}>{m.name}</option>)}
                  </select>
                </label>
              )}
            </section>
            <div className="actions">
              {run ? (
                <button type="button" className="btn danger wide" onClick={cancel} data-testid="cancel">Cancel</button>
              ) : (
                <>
                  <button type="button" className="btn" disabled={!ready} onClick={() => void start('preview')} data-testid="preview"
                    title="A quick small run (256 px) to judge the settings">Preview</button>
                  <button type="button" className="btn primary wide" disabled={!ready} onClick={() => void start('both')} data-testid="run"
                    title="A quick preview, then the full-size result">Stylize</button>
                </>
              )}
            </div>
          </aside>
          <div className="viewer-drop" onDragOver={(e) => e.preventDefault()} onDrop={dropOnViewer}>
          <Viewer view={view} zoom={zoom} overlay={overlay} empty={(
            <div className="empty-state">
              <div className="empty-art" aria-hidden="true" />
              <h2>Open a photo and a style</h2>
              <p>Drop images on the panel at the left, or click to choose.{api.native ? ' File ▸ Open works too.' : ''}</p>
              <p className="dim">Artistic takes a painting's brushwork; Photorealistic takes another photo's colour and light.</p>
            </div>
          )} />
          </div>
      </main>

      <footer className="statusbar" data-testid="statusbar">
        <span className={`dot${info ? ' ok' : ''}`} />
        <span data-testid="backend">{info ? `${info.backend.name} · ${info.backend.device}` : 'starting the engine…'}</span>
        {info && <span className="dim">{info.backend.threads} thread{info.backend.threads === 1 ? '' : 's'}</span>}
        {model && <span className="dim">model: {model}</span>}
        {model && engineMethod !== 'match' && info?.models.find((m) => m.name === model)?.source.startsWith('tiny') && (
          <span className="warn-text" title="A tiny network with random weights for trying the pipeline; results look like coloured texture. Fetch or import VGG19 in Models.">test network: results are not real styles</span>
        )}
        {info && info.models.length === 0 && <button type="button" className="link warn" title="Artistic and the neural photorealistic mode need VGG19 weights; colour match needs none" onClick={() => setTab('models')}>no model installed — open Models</button>}
        <span className="spacer" />
        <span className="status-msg" data-testid="notice" title={log.join('\n')}>{notice ?? (run ? `${run.phase === 'full' ? 'Full size' : 'Preview'}: ${run.stage}` : '')}</span>
      </footer>

      {exporting && result && (
        <ExportDialog name={result.suggestedName} width={result.width} height={result.height} sourceBitDepth={result.sourceBitDepth}
          resizable={result.resizable} sourceWidth={result.sourceWidth} sourceHeight={result.sourceHeight}
          native={api.native} busy={exporting === 'busy'} onExport={(c) => void doExport(c)} onClose={() => setExporting(undefined)} />
      )}
    </div>
  );
}
