/** A drop zone with a thumbnail: drop a file on it, or click to choose (native dialog or file picker). */
import { useRef, useState, type DragEvent } from 'react';

export interface PickedImage {
  id: string;
  name: string;
  width: number;
  height: number;
  bitDepth: number;
  thumbUrl: string;
  /** Larger, for the picture area. */
  previewUrl: string;
}

interface Props {
  label: string;
  hint: string;
  testId: string;
  image?: PickedImage;
  busy?: boolean;
  compact?: boolean;
  onFiles(files: File[]): void;
  /** Desktop: the native dialog instead of the file input. */
  onNativeOpen?: () => void;
  onClear?: () => void;
}

export function ImagePicker({ label, hint, testId, image, busy, compact, onFiles, onNativeOpen, onClear }: Props) {
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);
  const choose = () => (onNativeOpen ? onNativeOpen() : input.current?.click());
  const drop = (e: DragEvent) => {
    e.preventDefault();
    e.stopPropagation();
    setOver(false);
    const files = Array.from(e.dataTransfer.files);
    if (files.length) onFiles(files.slice(0, 1));
  };
  return (
    <div
      className={`picker${over ? ' over' : ''}${image ? ' filled' : ''}${compact ? ' compact' : ''}`}
      data-testid={testId}
      onDragOver={(e) => { e.preventDefault(); setOver(true); }}
      onDragLeave={() => setOver(false)}
      onDrop={drop}
    >
      <button type="button" className="picker-face" onClick={choose} title={hint} aria-label={`${label}: choose a file`}>
        {image ? <img src={image.thumbUrl} alt={image.name} /> : <span className="picker-plus">{busy ? '…' : '+'}</span>}
      </button>
      <div className="picker-meta">
        <div className="picker-label">{label}</div>
        {image ? (
          <>
            <div className="picker-name" title={image.name}>{image.name}</div>
            <div className="picker-dims dim">{image.width} × {image.height}{image.bitDepth === 16 ? ' · 16-bit' : ''}</div>
          </>
        ) : (
          <div className="picker-name dim">{busy ? 'Reading…' : 'Drop an image or click'}</div>
        )}
      </div>
      {image && onClear && <button type="button" className="icon-btn" title="Remove" aria-label={`Remove ${label}`} onClick={onClear}>×</button>}
      <input
        ref={input}
        type="file"
        accept="image/jpeg,image/png,image/webp,image/tiff,image/avif,.tif,.tiff"
        hidden
        data-testid={`${testId}-input`}
        onChange={(e) => {
          const files = Array.from(e.target.files ?? []);
          e.target.value = '';
          if (files.length) onFiles(files);
        }}
      />
    </div>
  );
}
