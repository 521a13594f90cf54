/** Progress on a terminal: one rewritten line on a TTY, a line every few seconds otherwise. */
import type { JobEvent } from '../protocol.ts';

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function progressPrinter(stream: NodeJS.WriteStream = process.stderr, quiet = false): { onEvent(e: JobEvent): void; done(): void } {
  const tty = Boolean(stream.isTTY);
  let lastPrint = 0;
  let open = false;
  return {
    onEvent(e) {
      if (quiet) return;
      if (e.type === 'log') {
        if (open) stream.write('\n');
        open = false;
        stream.write(`${e.message}\n`);
        return;
      }
      if (e.type !== 'progress') return;
      const now = Date.now();
      if (!tty && now - lastPrint < 2000 && e.fraction < 1) return;
      lastPrint = now;
      const pct = `${(e.fraction * 100).toFixed(1).padStart(5)}%`;
      // Iterative solvers stop at convergence: they report no total, only the count so far.
      const it = e.iteration ? ` iter ${e.iteration}${e.iterations ? `/${e.iterations}` : ''}` : '';
      const loss = e.losses ? ` loss ${e.losses.total.toExponential(3)} (content ${e.losses.content.toExponential(2)}, style ${e.losses.style.toExponential(2)}, tv ${e.losses.tv.toExponential(2)})` : '';
      const eta = e.etaMs !== undefined ? ` eta ${formatDuration(e.etaMs)}` : '';
      const line = `${pct} ${e.stage}${it}${loss} elapsed ${formatDuration(e.elapsedMs)}${eta}`;
      if (tty) {
        stream.write(`\r\x1b[2K${line}`);
        open = true;
      } else stream.write(`${line}\n`);
    },
    done() {
      if (open) stream.write('\n');
      open = false;
    },
  };
}
