/** The result view: before/after comparison with a draggable divider, fit or 100% zoom. */
import { useRef, useState, type PointerEvent, type ReactNode } from 'react';

export interface ViewImages {
  before?: string;
  after?: string;
  width: number;
  height: number;
  label: string;
}

interface Props {
  view?: ViewImages;
  zoom: 'fit' | '100';
  empty: ReactNode;
  overlay?: ReactNode;
}

export function Viewer({ view, zoom, empty, overlay }: Props) {
  const [split, setSplit] = useState(0.5);
  const stage = useRef<HTMLDivElement>(null);
  const dragging = useRef(false);
  const move = (e: PointerEvent) => {
    if (!dragging.current || !stage.current) return;
    const r = stage.current.getBoundingClientRect();
    setSplit(Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)));
  };
  const compare = Boolean(view?.before && view.after);
  return (
    <div className={`viewer zoom-${zoom}`} data-testid="viewer">
      {view ? (
        <div className="viewer-scroll">
          <div
            ref={stage}
            className="stage"
            data-testid="compare"
            style={zoom === '100' ? { width: view.width, height: view.height } : { aspectRatio: `${view.width} / ${view.height}`, ['--ar' as string]: view.width / view.height }}
            onPointerDown={(e) => {
              if (!compare) return;
              dragging.current = true;
              (e.target as HTMLElement).setPointerCapture?.(e.pointerId);
              move(e);
            }}
            onPointerMove={move}
            onPointerUp={() => { dragging.current = false; }}
          >
            {view.before && <img className="layer before" src={view.before} alt="Before" draggable={false} />}
            {view.after && (
              <img className="layer after" src={view.after} alt="After" draggable={false}
                style={compare ? { clipPath: `inset(0 0 0 ${split * 100}%)` } : undefined} data-testid="after-image" />
            )}
            {compare && (
              <>
                <div className="divider" style={{ left: `${split * 100}%` }}><span className="knob" /></div>
                <span className="tag left">Before</span>
                <span className="tag right">After</span>
                <input className="split-range" type="range" min={0} max={100} value={Math.round(split * 100)} aria-label="Before/after divider"
                  data-testid="split" onChange={(e) => setSplit(Number(e.target.value) / 100)} />
              </>
            )}
          </div>
        </div>
      ) : (
        <div className="viewer-empty">{empty}</div>
      )}
      {view && <div className="viewer-caption" data-testid="viewer-caption">{view.label}</div>}
      {overlay}
    </div>
  );
}
