/** Labelled controls with a tooltip each. */
import type { ReactNode } from 'react';

export function Field({ label, tip, children, value }: { label: string; tip: string; children: ReactNode; value?: ReactNode }) {
  return (
    // A div, not a label: a label forwards every click inside it to its first control.
    <div className="field" title={tip} role="group" aria-label={label}>
      <span className="field-label">
        {label}
        <span className="tip" aria-hidden="true">?</span>
        {value !== undefined && <span className="field-value">{value}</span>}
      </span>
      {children}
    </div>
  );
}

export function NumberInput({ value, onChange, min, max, step, testId }: { value: number; onChange(v: number): void; min?: number; max?: number; step?: number; testId?: string }) {
  return (
    <input
      type="number"
      value={value}
      min={min}
      max={max}
      step={step}
      data-testid={testId}
      onChange={(e) => {
        const v = Number(e.target.value);
        if (e.target.value !== '' && Number.isFinite(v)) onChange(v);
      }}
    />
  );
}

export function Segmented<T extends string>({ options, value, onChange, testId }: { options: { value: T; label: string; tip?: string }[]; value: T; onChange(v: T): void; testId?: string }) {
  return (
    <div className="segmented" role="radiogroup" data-testid={testId}>
      {options.map((o) => (
        <button key={o.value} type="button" role="radio" aria-checked={o.value === value} className={o.value === value ? 'on' : ''} title={o.tip} onClick={() => onChange(o.value)}>
          {o.label}
        </button>
      ))}
    </div>
  );
}
