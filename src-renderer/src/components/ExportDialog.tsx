/** Export: format, bit depth, JPEG quality. The photo's metadata is kept (as the command line does). */
import { useEffect, useState } from 'react';
import { Field, Segmented } from './Field.tsx';

export interface ExportChoice {
  format: 'png' | 'jpeg' | 'tiff';
  bitDepth: 8 | 16;
  quality: number;
}

interface Props {
  name: string;
  width: number;
  height: number;
  sourceBitDepth: 8 | 16;
  native: boolean;
  busy: boolean;
  onExport(c: ExportChoice): void;
  onClose(): void;
}

const EXT = { png: 'png', jpeg: 'jpg', tiff: 'tif' } as const;

export function ExportDialog({ name, width, height, sourceBitDepth, native, busy, onExport, onClose }: Props) {
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
        <p className="dim">{name}.{EXT[format]} · {width}×{height} px · metadata (EXIF, colour profile) kept from the photo</p>
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
            onClick={() => onExport({ format, bitDepth: depth, quality })}>
            {busy ? 'Exporting…' : native ? 'Save as…' : 'Download'}
          </button>
        </div>
      </div>
    </div>
  );
}
