/** The method's main controls, with presets; the rarer ones folded under "More". */
import type { GatysSettings, MatchSettings, PhotoSettings, Preset } from '../settings.ts';
import { GATYS_PRESETS, MATCH_PRESETS, PHOTO_PRESETS } from '../settings.ts';
import { Field, NumberInput, Segmented } from './Field.tsx';

function Presets<T>({ presets, current, onPick }: { presets: Preset<T>[]; current: T; onPick(v: Partial<T>): void }) {
  const active = presets.find((p) => Object.entries(p.values).every(([k, v]) => current[k as keyof T] === v));
  return (
    <div className="presets" role="group" aria-label="Presets">
      {presets.map((p) => (
        <button key={p.name} type="button" className={`chip${active === p ? ' on' : ''}`} title={p.tip} onClick={() => onPick(p.values)}>
          {p.name}
        </button>
      ))}
      {!active && <span className="chip ghost">Custom</span>}
    </div>
  );
}

const SIZES = [256, 384, 512, 768, 1024, 1536, 2048];

/** `warning`: the engine's memory estimate says this size will not run here (and what will). */
function SizeField({ value, onChange, warning }: { value: number; onChange(v: number): void; warning?: string }) {
  return (
    <Field label="Size" tip="Longest side of the result, in pixels. Larger takes longer and needs more memory." value={`${value} px`}>
      <div className="row">
        <select value={SIZES.includes(value) ? value : ''} onChange={(e) => onChange(Number(e.target.value))} aria-label="Size preset">
          {!SIZES.includes(value) && <option value="">custom</option>}
          {SIZES.map((s) => <option key={s} value={s}>{s} px</option>)}
        </select>
        <NumberInput value={value} min={16} max={16384} step={1} onChange={onChange} testId="size" />
      </div>
      {warning && <p className="warn-text small memory-warning" role="alert" data-testid="memory-warning">{warning}</p>}
    </Field>
  );
}

export function GatysControls({ s, set, sizeWarning }: { s: GatysSettings; set(v: Partial<GatysSettings>): void; sizeWarning?: string }) {
  const logStyle = Math.log10(Math.max(s.styleWeight, 0.1));
  return (
    <div className="controls">
      <Presets presets={GATYS_PRESETS} current={s} onPick={set} />
      <SizeField value={s.size} onChange={(size) => set({ size })} warning={sizeWarning} />
      <Field label="Style strength" tip="Style weight β: how strongly the painting's textures are imposed (content weight α stays as set)." value={s.styleWeight}>
        <input type="range" min={0} max={4} step={0.05} value={logStyle} aria-label="Style strength"
          onChange={(e) => set({ styleWeight: Number((10 ** Number(e.target.value)).toPrecision(2)) })} />
      </Field>
      <Field label="Iterations" tip="Optimisation steps per scale. 300–500 is usual; more refines detail." value={s.iters}>
        <NumberInput value={s.iters} min={1} max={100000} onChange={(iters) => set({ iters })} testId="iters" />
      </Field>
      <label className="toggle" title="Keep the photo's own colours and take only the painting's light and texture (luminance transfer).">
        <input type="checkbox" checked={s.preserveColors} onChange={(e) => set({ preserveColors: e.target.checked })} />
        <span>Keep the photo's colours</span>
      </label>
      <details className="more">
        <summary>More settings</summary>
        <Field label="Optimiser" tip="L-BFGS converges in fewer steps; Adam uses less memory.">
          <Segmented<GatysSettings['optimizer']> options={[{ value: 'lbfgs', label: 'L-BFGS' }, { value: 'adam', label: 'Adam' }]} value={s.optimizer} onChange={(optimizer) => set({ optimizer })} />
        </Field>
        <Field label="Content weight" tip="Content weight α: how closely the result keeps the photo's structure." value={s.contentWeight}>
          <NumberInput value={s.contentWeight} min={0} step={0.5} onChange={(contentWeight) => set({ contentWeight })} />
        </Field>
        <Field label="Smoothness" tip="Total-variation weight: higher gives smoother, less noisy results." value={s.tvWeight}>
          <NumberInput value={s.tvWeight} min={0} step={0.001} onChange={(tvWeight) => set({ tvWeight })} />
        </Field>
        <Field label="Scales" tip="Coarse-to-fine: optimise at lower resolutions first. 2–3 give larger brush strokes at big sizes." value={s.scales}>
          <input type="range" min={1} max={4} step={1} value={s.scales} onChange={(e) => set({ scales: Number(e.target.value) })} aria-label="Scales" />
        </Field>
        <Field label="Style scale" tip="Size of the painting relative to the result: below 1 gives finer strokes, above 1 larger ones." value={`${s.styleScale.toFixed(2)}×`}>
          <input type="range" min={0.25} max={2} step={0.05} value={s.styleScale} onChange={(e) => set({ styleScale: Number(e.target.value) })} aria-label="Style scale" />
        </Field>
        <Field label="Start from" tip="The image the optimisation starts from.">
          <Segmented<GatysSettings['init']> options={[{ value: 'content', label: 'Photo' }, { value: 'random', label: 'Noise' }, { value: 'style', label: 'Painting' }]} value={s.init} onChange={(init) => set({ init })} />
        </Field>
        <Field label="Seed" tip="Random seed: the same seed and settings give the same result." value={s.seed}>
          <NumberInput value={s.seed} step={1} onChange={(seed) => set({ seed: Math.round(seed) })} />
        </Field>
      </details>
    </div>
  );
}

function StrengthField({ value, onChange }: { value: number; onChange(v: number): void }) {
  return (
    <Field label="Strength" tip="α: how much of the reference photo's look replaces the original's (1 = all of it)." value={`${Math.round(value * 100)}%`}>
      <input type="range" min={0} max={1} step={0.01} value={value} onChange={(e) => onChange(Number(e.target.value))} aria-label="Strength" />
    </Field>
  );
}

const SMOOTH_LABELS: Record<string, { label: string; tip: string }> = {
  exact: { label: 'Exact', tip: 'Closed-form smoothing: removes artefacts and keeps edges crisp; the slowest.' },
  fast: { label: 'Fast', tip: 'Guided-filter approximation of the smoothing: much faster, nearly as clean.' },
  none: { label: 'None', tip: 'No smoothing: the raw PhotoWCT result (may show artefacts).' },
};

export function PhotoControls({ s, set, smoothModes, sizeWarning }: { s: PhotoSettings; set(v: Partial<PhotoSettings>): void; smoothModes: string[]; sizeWarning?: string }) {
  return (
    <div className="controls">
      <Presets presets={PHOTO_PRESETS} current={s} onPick={set} />
      <SizeField value={s.size} onChange={(size) => set({ size })} warning={sizeWarning} />
      <StrengthField value={s.alpha} onChange={(alpha) => set({ alpha })} />
      <Field label="Smoothing" tip="The step after the stylisation that makes the result photographic again.">
        <Segmented options={smoothModes.map((m) => ({ value: m, label: SMOOTH_LABELS[m]?.label ?? m, tip: SMOOTH_LABELS[m]?.tip }))} value={smoothModes.includes(s.smooth) ? s.smooth : smoothModes[0]} onChange={(smooth) => set({ smooth })} />
      </Field>
    </div>
  );
}

const REGRAIN_LABELS: Record<MatchSettings['smooth'], { label: string; tip: string }> = {
  fast: { label: 'Fast', tip: "Local affine fit to the photo: gives back its edges, texture and grain; a fraction of a second." },
  exact: { label: 'Exact', tip: 'Closed-form smoothing with the photo as the guide; seconds, and keeps a little less fine structure.' },
  none: { label: 'None', tip: 'The colour transfer as it is: can look posterised where the reference has few colours.' },
};

/** Colour match: no model needed. */
export function MatchControls({ s, set, sizeWarning }: { s: MatchSettings; set(v: Partial<MatchSettings>): void; sizeWarning?: string }) {
  return (
    <div className="controls">
      <Presets presets={MATCH_PRESETS} current={s} onPick={set} />
      <SizeField value={s.size} onChange={(size) => set({ size })} warning={sizeWarning} />
      <StrengthField value={s.alpha} onChange={(alpha) => set({ alpha })} />
      <label className="toggle" title="Take only the reference's colours; the photo's exposure and tones stay exactly as they are.">
        <input type="checkbox" checked={s.keepLuminance} onChange={(e) => set({ keepLuminance: e.target.checked })} data-testid="keep-luminance" />
        <span>Keep the photo's luminance</span>
      </label>
      <Field label="Regrain" tip="The step that gives the photo back its own detail after the colours are moved.">
        <Segmented<MatchSettings['smooth']> options={(['fast', 'exact', 'none'] as const).map((m) => ({ value: m, label: REGRAIN_LABELS[m].label, tip: REGRAIN_LABELS[m].tip }))}
          value={s.smooth} onChange={(smooth) => set({ smooth })} />
      </Field>
    </div>
  );
}
