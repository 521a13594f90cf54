/** Models: installed weights and decoders; import a weights file, fetch VGG19, train PhotoWCT decoders. */
import { useEffect, useRef, useState } from 'react';
import type { ImageRef, ModelInfo, RunEvent } from '../../../src-main/api-contract.ts';
import { api, asApiError, type ApiError } from '../api.ts';
import { formatDuration, newRunId } from '../format.ts';
import { Field, NumberInput } from './Field.tsx';

interface Props {
  models: ModelInfo[];
  modelsDir: string;
  onChanged(models: ModelInfo[]): void;
  onError(e: ApiError): void;
}

interface Job {
  runId: string;
  label: string;
  fraction: number;
  stage: string;
  etaMs?: number;
  losses: number[];
}

function LossPlot({ losses }: { losses: number[] }) {
  if (losses.length < 2) return null;
  const w = 600;
  const h = 100;
  // Log scale: training losses fall by orders of magnitude.
  const logs = losses.map((l) => Math.log10(Math.max(l, 1e-12)));
  const lo = Math.min(...logs);
  const hi = Math.max(...logs);
  const xy = (v: number, i: number) => `${((i / (logs.length - 1)) * w).toFixed(1)},${(h - ((v - lo) / (hi - lo || 1)) * (h - 8) - 4).toFixed(1)}`;
  const pts = logs.map(xy).join(' ');
  // Random crops make each step's loss noisy: a moving average shows the trend.
  let ema = logs[0];
  const trend = logs.map((v, i) => xy((ema = i === 0 ? v : 0.9 * ema + 0.1 * v), i)).join(' ');
  return (
    <div className="loss" data-testid="loss-plot">
      <svg className="loss-plot" viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" role="img" aria-label="Training loss">
        <polyline points={pts} fill="none" stroke="currentColor" strokeOpacity="0.45" strokeWidth="1" vectorEffect="non-scaling-stroke" />
        <polyline points={trend} fill="none" stroke="currentColor" strokeWidth="2" vectorEffect="non-scaling-stroke" />
      </svg>
      <div className="row dim small"><span>loss {losses[0].toExponential(2)}</span><span className="spacer" /><span>step {losses.length}: {losses.at(-1)!.toExponential(2)}</span></div>
    </div>
  );
}

export function ModelsPanel({ models, modelsDir, onChanged, onError }: Props) {
  const [job, setJob] = useState<Job>();
  const jobRef = useRef<Job>(undefined);
  jobRef.current = job;
  const [message, setMessage] = useState<string>();
  /** The last finished run's loss curve stays in view beside its message. */
  const [lastLosses, setLastLosses] = useState<number[]>([]);
  /** Empty: the importer's own name (photowct for FastPhotoStyle's file, else vgg19). */
  const [importName, setImportName] = useState('');
  const [importing, setImporting] = useState(false);
  const [level, setLevel] = useState<1 | 2 | 3 | 4>(1);
  const [steps, setSteps] = useState(2000);
  const [crop, setCrop] = useState(256);
  const [batch, setBatch] = useState(4);
  const [model, setModel] = useState(models[0]?.name ?? '');
  const [photos, setPhotos] = useState<ImageRef[]>([]);
  const [precision, setPrecision] = useState<'fp32' | 'mixed-fp16' | 'mixed-bf16'>('fp32');
  const [fineTune, setFineTune] = useState(false);
  const [resume, setResume] = useState(false);
  const weightsInput = useRef<HTMLInputElement>(null);
  const photosInput = useRef<HTMLInputElement>(null);

  useEffect(() => api.onEvent((e) => {
    const j = jobRef.current;
    if (!j || !('runId' in e) || e.runId !== j.runId) return;
    const ev = e as RunEvent;
    if (ev.type === 'progress') {
      const next = { ...j, fraction: ev.fraction, stage: ev.stage, etaMs: ev.etaMs, losses: ev.losses ? [...j.losses, ev.losses.total] : j.losses };
      jobRef.current = next; // before the next render: the reply may come first
      setJob(next);
    }
  }), []);
  useEffect(() => {
    if (!models.some((m) => m.name === model) && models[0]) setModel(models[0].name);
  }, [models, model]);

  const refresh = async () => onChanged(await api.call('listModels', {}));

  const importWeights = async (file?: File) => {
    setMessage(undefined);
    setImporting(true);
    try {
      const name = importName.trim() || undefined;
      const m = await api.call('importModel', file ? { name, file: { name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) } } : { name });
      if (m) setMessage(`Imported ${m.name} (${m.source})`);
      await refresh();
    } catch (e) {
      onError(asApiError(e));
    } finally {
      setImporting(false);
    }
  };

  const run = async (label: string, start: (runId: string) => Promise<string>) => {
    const runId = newRunId();
    setMessage(undefined);
    jobRef.current = { runId, label, fraction: 0, stage: 'starting', losses: [] };
    setJob(jobRef.current);
    try {
      setMessage(await start(runId));
      await refresh();
    } catch (e) {
      const err = asApiError(e);
      if (err.code === 'CANCELLED') setMessage(`${label}: cancelled`);
      else onError(err);
    } finally {
      setLastLosses(jobRef.current?.losses ?? []);
      setJob(undefined);
    }
  };

  const addPhotos = async (files: File[]) => {
    try {
      const refs = await Promise.all(files.map(async (f) => api.call('uploadImage', { role: 'training', name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));
      setPhotos((p) => [...p, ...refs]);
    } catch (e) {
      onError(asApiError(e));
    }
  };

  return (
    <div className="models" data-testid="models-panel">
      <section className="card">
        <header className="card-head">
          <h2>Installed models</h2>
          <span className="dim mono" title="STUDIO_MODELS_DIR sets this folder" data-testid="models-dir">{modelsDir}</span>
        </header>
        {models.length === 0 ? (
          <p className="empty-note">No models installed yet. Fetch VGG19 (80 MB) or FastPhotoStyle's photo model (49 MB), or import a file you already have.</p>
        ) : (
          <table className="table" data-testid="models-table">
            <thead><tr><th>Name</th><th>Network</th><th>Precision</th><th>Source</th><th>Licence</th><th>Photo decoders</th></tr></thead>
            <tbody>
              {models.map((m) => (
                <tr key={m.name}>
                  <td className="strong">{m.name}</td>
                  <td>VGG19 {m.widths.join('/')}{m.depth ? ` to ${m.depth}` : ''}</td>
                  <td>{m.dtype}</td>
                  <td className="dim">{m.source}</td>
                  <td data-testid={`licence-${m.name}`}>{m.licence
                    ? <a href={m.licence.url} target="_blank" rel="noreferrer" className={m.licence.commercialUse ? '' : 'warn-text'} title={m.licence.commercialUse ? undefined : 'Non-commercial use only'}>{m.licence.name}{m.licence.commercialUse ? '' : ' (non-commercial)'}</a>
                    : <span className="dim" title="Not known for an imported file: see where it came from">unknown</span>}</td>
                  <td>{[1, 2, 3, 4].map((l) => <span key={l} className={`pill${m.decoders.includes(l) ? ' ok' : ''}`} title={m.decoders.includes(l) ? `level ${l} installed` : `level ${l} missing`}>{l}</span>)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <div className="row gap">
          <span className="dim">Save as</span>
          <input className="name-input" value={importName} onChange={(e) => setImportName(e.target.value.replace(/[^\w.-]/g, ''))} aria-label="Name for the imported model" placeholder="automatic"
            title="The imported model's name; empty: photowct for FastPhotoStyle's photo_wct.pth, else vgg19 (the default model)" data-testid="import-name" />
          <button type="button" className="btn" disabled={Boolean(job) || importing} onClick={() => (api.native ? void importWeights() : weightsInput.current?.click())}
            title="Keras VGG19 notop .h5, torchvision's vgg19 .pth, or FastPhotoStyle's photo_wct.pth">{importing ? 'Importing…' : 'Import weights file…'}</button>
          <button type="button" className="btn" disabled={Boolean(job)} data-testid="fetch-vgg19"
            onClick={() => void run('Fetch VGG19', async (runId) => { const m = await api.call('fetchModel', { runId }); return `Installed ${m.name}`; })}>
            Fetch VGG19 (80 MB)
          </button>
          <button type="button" className="btn" disabled={Boolean(job)} data-testid="fetch-photowct"
            title="FastPhotoStyle's encoder and four decoders from NVIDIA, licence CC BY-NC-SA 4.0: non-commercial use only"
            onClick={() => void run('Fetch photo model', async (runId) => { const m = await api.call('fetchModel', { runId, model: 'photowct' }); return `Installed ${m.name}`; })}>
            Fetch photo model (49 MB, non-commercial)
          </button>
          <input ref={weightsInput} type="file" accept=".h5,.hdf5,.pth,.pt" hidden data-testid="import-input" onChange={(e) => { const f = e.target.files?.[0]; e.target.value = ''; if (f) void importWeights(f); }} />
        </div>
      </section>

      <section className="card">
        <header className="card-head">
          <h2>Train photo decoders</h2>
          <span className="dim">PhotoWCT needs one decoder per level, trained for the model's encoder</span>
        </header>
        <div className="grid-4">
          <Field label="Model" tip="The encoder the decoder learns to invert.">
            <select value={model} onChange={(e) => setModel(e.target.value)}>{models.map((m) => <option key={m.name}>{m.name}</option>)}</select>
          </Field>
          <Field label="Level" tip="1 (relu1_1) to 4 (relu4_1). Train all four for the photo method.">
            <select value={level} onChange={(e) => setLevel(Number(e.target.value) as 1 | 2 | 3 | 4)}>{[1, 2, 3, 4].map((l) => <option key={l} value={l}>relu{l}_1</option>)}</select>
          </Field>
          <Field label="Steps" tip="Adam steps; checkpoints every 200 so a cancelled run can resume."><NumberInput value={steps} min={1} onChange={setSteps} testId="train-steps" /></Field>
          <Field label="Crop / batch" tip="Random crop size (px) and crops per step.">
            <div className="row"><NumberInput value={crop} min={16} max={2048} onChange={setCrop} testId="train-crop" /><NumberInput value={batch} min={1} max={64} onChange={setBatch} testId="train-batch" /></div>
          </Field>
        </div>
        <div className="row gap align-end">
          <Field label="Precision" tip="Mixed precision computes in 16 bits with 32-bit master weights: less memory on GPUs; fp32 is the reference.">
            <select value={precision} onChange={(e) => setPrecision(e.target.value as typeof precision)}>
              <option value="fp32">fp32</option><option value="mixed-fp16">mixed fp16</option><option value="mixed-bf16">mixed bf16</option>
            </select>
          </Field>
          <label className="toggle" title="Start from the installed decoder of this level (fine-tuning) instead of a fresh one">
            <input type="checkbox" checked={fineTune} onChange={(e) => setFineTune(e.target.checked)} /><span>Fine-tune the installed decoder</span>
          </label>
          <label className="toggle" title="Continue an interrupted or cancelled run of this level from its last checkpoint">
            <input type="checkbox" checked={resume} onChange={(e) => setResume(e.target.checked)} /><span>Resume</span>
          </label>
        </div>
        <div className="row gap">
          <button type="button" className="btn" disabled={Boolean(job)} onClick={() => {
            if (api.native) void api.call('openImages', { role: 'training' }).then((r) => r && setPhotos((p) => [...p, ...r]), (e) => onError(asApiError(e)));
            else photosInput.current?.click();
          }}>Add training photos…</button>
          <span className="dim" data-testid="train-count">{photos.length} photo{photos.length === 1 ? '' : 's'}</span>
          {photos.length > 0 && <button type="button" className="btn ghost" onClick={() => setPhotos([])}>Clear</button>}
          <span className="spacer" />
          <button type="button" className="btn primary" disabled={Boolean(job) || photos.length === 0 || !model} data-testid="train-start"
            onClick={() => void run(`Train level ${level}`, async (runId) => {
              const r = await api.call('trainDecoder', { runId, level, images: photos.map((p) => p.id), model, steps, crop, batch, precision, fineTune, resume });
              const val = Number.isFinite(r.finalValLoss) ? `; validation ${r.finalValLoss.toExponential(2)} (best ${r.bestValLoss.toExponential(2)} at step ${r.bestStep})` : '';
              return `Decoder level ${level} trained: ${r.steps} steps${r.resumedFrom ? ` (resumed at ${r.resumedFrom})` : ''}, loss ${r.firstLoss.toExponential(2)} → ${r.finalLoss.toExponential(2)}${val}`;
            })}>Train</button>
          <input ref={photosInput} type="file" accept="image/*" multiple hidden data-testid="train-photos-input" onChange={(e) => { const f = Array.from(e.target.files ?? []); e.target.value = ''; if (f.length) void addPhotos(f); }} />
        </div>
      </section>

      {job && (
        <section className="card" data-testid="models-job">
          <div className="row">
            <strong>{job.label}</strong>
            <span className="dim">&nbsp;· {job.stage} · {Math.round(job.fraction * 100)}%{job.etaMs !== undefined ? ` · ${formatDuration(job.etaMs)} left` : ''}</span>
            <span className="spacer" />
            <button type="button" className="btn danger" onClick={() => void api.call('cancel', { runId: job.runId })}>Cancel</button>
          </div>
          <div className="bar"><div style={{ width: `${job.fraction * 100}%` }} /></div>
          <LossPlot losses={job.losses} />
        </section>
      )}
      {message && !job && (
        <section className="card" data-testid="models-message">
          <p className="note">{message}</p>
          <LossPlot losses={lastLosses} />
        </section>
      )}
    </div>
  );
}
