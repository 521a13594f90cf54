/**
 * Export: size (photorealistic results: full resolution by default, the working size, or a longest
 * side), format, bit depth, JPEG quality. The photo's metadata is kept (as the command line does).
 */
import { useEffect, useState } from 'react';
import { Field, NumberInput, Segmented } from './Field.tsx';

export interface ExportChoice {
  format: 'png' | 'jpeg' | 'tiff';
  bitDepth: 8 | 16;
  quality: number;
  size: 'full' | 'working' | number;
}

interface Props {
  name: string;
  width: number;
  height: number;
  resizable: boolean;
  sourceWidth: number;
  sourceHeight: number;
  sourceBitDepth: 8 | 16;
  native: boolean;
  busy: boolean;
  onExport(c: ExportChoice): void;
  onClose(): void;
}

const EXT = { png: 'png', jpeg: 'jpg', tiff: 'tif' } as const;

type SizeChoice = 'full' | 'working' | 'custom';

export function ExportDialog({ name, width, height, resizable, sourceWidth, sourceHeight, sourceBitDepth, native, busy, onExport, onClose }: Props) {
  const [sizeChoice, setSizeChoice] = useState<SizeChoice>(resizable ? 'full' : 'working');
  const [side, setSide] = useState(Math.max(sourceWidth, sourceHeight));
  const [format, setFormat] = useState<ExportChoice['format']>('jpeg');
  const [bitDepth, setBitDepth] = useState<8 | 16>(sourceBitDepth);
  const [quality, setQuality] = useState(92);
  const depth = format === 'jpeg' ? 8 : bitDepth;
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => { if (e.key === 'Escape') onClose(); };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onClose]);
  return (
    <div className="modal-backdrop" onMouseDown={(e) => { if (e.target === e.currentTarget) onClose(); }}>
      <div className="modal" role="dialog" aria-modal="true" aria-labelledby="export-title" data-testid="export-dialog">
        <h2 id="export-title">Export</h2>
        {(() => {
          const long = Math.max(sourceWidth, sourceHeight), k = Math.min(1, Math.min(side, long) / long);
          const [w, h] = sizeChoice === 'full' ? [sourceWidth, sourceHeight] : sizeChoice === 'working' ? [width, height] : [Math.max(1, Math.round(sourceWidth * k)), Math.max(1, Math.round(sourceHeight * k))];
          return <p className="dim" data-testid="export-summary">{name}.{EXT[format]} · {w}×{h} px · metadata (EXIF, colour profile) kept from the photo</p>;
        })()}
        {resizable && (
          <Field label="Size" tip="Full resolution carries the look to every pixel of your photo: its own detail and grain, the look's colours.">
            <Segmented<SizeChoice> testId="export-size" options={[
              { value: 'full', label: `Full (${sourceWidth}×${sourceHeight})` },
              { value: 'working', label: `As shown (${width}×${height})` },
              { value: 'custom', label: 'Long side…' },
            ]} value={sizeChoice} onChange={setSizeChoice} />
            {sizeChoice === 'custom' && <NumberInput value={side} min={16} max={Math.max(sourceWidth, sourceHeight)} onChange={(v) => setSide(Math.round(v))} testId="export-side" />}
          </Field>
        )}
        <Field label="Format" tip="JPEG for sharing; PNG or TIFF for lossless files and 16 bits.">
          <Segmented<ExportChoice['format']> testId="export-format" options={[{ value: 'jpeg', label: 'JPEG' }, { value: 'png', label: 'PNG' }, { value: 'tiff', label: 'TIFF' }]} value={format} onChange={setFormat} />
        </Field>
        <Field label="Bit depth" tip="16 bits keep smooth gradients for further editing (PNG and TIFF only).">
          <Segmented<'8' | '16'> testId="export-depth" options={[{ value: '8' as const, label: '8-bit' }, ...(format === 'jpeg' ? [] : [{ value: '16' as const, label: '16-bit' }])]} value={String(depth) as '8' | '16'} onChange={(v) => setBitDepth(Number(v) as 8 | 16)} />
        </Field>
        {format === 'jpeg' && (
          <Field label="Quality" tip="JPEG quality: 90 and above keep full colour resolution (4:4:4)." value={quality}>
            <input type="range" min={50} max={100} value={quality} onChange={(e) => setQuality(Number(e.target.value))} aria-label="Quality" data-testid="export-quality" />
          </Field>
        )}
        <div className="modal-actions">
          <button type="button" className="btn" onClick={onClose}>Cancel</button>
          <button type="button" className="btn primary" disabled={busy} data-testid="export-confirm"
            onClick={() => onExport({ format, bitDepth: depth, quality, size: sizeChoice === 'custom' ? Math.max(16, Math.min(side, Math.max(sourceWidth, sourceHeight))) : sizeChoice })}>
            {busy ? 'Exporting…' : native ? 'Save as…' : 'Download'}
          </button>
        </div>
      </div>
    </div>
  );
}
