/**
 * The Batch panel's view of a shoot queue (`studio batch --queue` sent the shoot, `studio worker`s on
 * any machine make it): the queue's shoots, and one followed live — counts, time left, each worker's
 * share and what it is making, failures with their reasons — with cancel. Following only watches:
 * closing the window or "Stop following" leaves the work going.
 */
import { useEffect, useRef, useState, type ReactNode } from 'react';
import type { QueuedShoot } from '../../../src-main/batch-contract.ts';
import { api, asApiError, type ApiError } from '../api.ts';
import { formatDuration, newRunId } from '../format.ts';
import { Field } from './Field.tsx';

const KEY = 'style-studio.queue.v1';

/** Tenths under ten seconds (colour match takes a fraction of one). */
const perPhoto = (ms: number) => (ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : formatDuration(ms));

function ShootCard({ s, following, onUnfollow, onCancel }: { s: QueuedShoot; following: boolean; onUnfollow(): void; onCancel(): void }) {
  const finished = s.done + s.failedCount;
  const fraction = s.total > 0 ? finished / s.total : 0;
  const state = s.state === 'cancelled' ? 'Cancelled' : s.finished ? (s.failedCount ? 'Finished, with failures' : 'Finished') : following ? 'Running' : 'Not followed';
  return (
    <section className="card batch-progress" data-testid="queue-shoot" data-state={s.state === 'cancelled' ? 'cancelled' : s.finished ? 'finished' : 'running'} role="status" aria-live="polite">
      <div className="row">
        <strong data-testid="queue-status">{state}</strong>
        <span className="dim" data-testid="queue-counts">{finished} of {s.total} photos</span>
        <span className="spacer" />
        <span className="dim">{s.etaMs !== undefined && s.remaining > 0 ? `about ${formatDuration(s.etaMs)} left` : ''}</span>
      </div>
      <p className="dim small mono">shoot {s.id} · {s.inDir} → {s.outDir} · {s.method} · sent from {s.host}</p>
      <div className="bar"><div style={{ width: `${Math.max(following && !s.finished ? 2 : 0, fraction * 100)}%` }} /></div>
      <div className="batch-tally">
        <span className="tally done" data-testid="queue-done">{s.done} done</span>
        {s.skipped > 0 && <span className="tally skipped">{s.skipped} made earlier</span>}
        <span className="tally failed">{s.failedCount} failed</span>
        <span className="tally running">{s.running} running</span>
        <span className="tally">{s.remaining - s.running} waiting</span>
        <span className="tally" data-testid="queue-connected">{s.connected} worker{s.connected === 1 ? '' : 's'} connected</span>
      </div>
      {s.workers.length > 0 && (
        <table className="table" data-testid="queue-workers">
          <thead><tr><th>Worker</th><th className="num">Done</th><th className="num">A photo</th><th>Making now</th></tr></thead>
          <tbody>
            {s.workers.map((w) => (
              <tr key={w.name}><td className="mono">{w.name}</td><td className="num">{w.done}</td><td className="num dim">{w.done ? perPhoto(w.msPerPhoto) : ''}</td><td className="dim">{w.running.join(', ')}</td></tr>
            ))}
          </tbody>
        </table>
      )}
      {s.failedCount > 0 && (
        <ul className="batch-failures" data-testid="queue-failures">
          {s.failed.map((f) => <li key={f.input}><span className="mono">{f.input}</span><span className="dim"> — {f.reason}</span></li>)}
          {s.failedCount > s.failed.length && <li className="dim">… and {s.failedCount - s.failed.length} more (studio batch --queue … --status)</li>}
        </ul>
      )}
      {following && (
        <div className="row">
          <button type="button" className="btn" onClick={onUnfollow} data-testid="queue-unfollow" title="Stop watching; the workers go on">Stop following</button>
          {s.state !== 'cancelled' && !s.finished && (
            <button type="button" className="btn danger" onClick={onCancel} data-testid="queue-cancel" title="Waiting photos leave the queue and the workers stop; results made stay. Sending the same batch again resumes it.">Cancel shoot</button>
          )}
        </div>
      )}
    </section>
  );
}

/** The queue's sidebar controls and its content, for the Batch panel to place. */
export function useShootQueue(onError: (e: ApiError) => void): { controls: ReactNode; view: ReactNode } {
  const [url, setUrl] = useState(() => localStorage.getItem(KEY) ?? '');
  const [shoots, setShoots] = useState<QueuedShoot[]>();
  const [busy, setBusy] = useState(false);
  const [followed, setFollowed] = useState<{ runId: string; shoot: QueuedShoot; live: boolean }>();
  const runRef = useRef<string>(undefined);

  useEffect(() => api.onEvent((e) => {
    if (e.type === 'batchQueue' && e.runId === runRef.current) setFollowed((f) => (f ? { ...f, shoot: e.shoot } : f));
  }), []);
  // Leaving the panel (or the window) stops following, never the shoot.
  useEffect(() => () => {
    if (runRef.current) void api.call('batchQueueUnfollow', { runId: runRef.current }).catch(() => undefined);
  }, []);

  const list = async () => {
    setBusy(true);
    try {
      localStorage.setItem(KEY, url.trim());
      setShoots(await api.call('batchQueueList', { url: url.trim() }));
    } catch (e) {
      onError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };

  const follow = async (s: QueuedShoot) => {
    if (runRef.current) await api.call('batchQueueUnfollow', { runId: runRef.current }).catch(() => undefined);
    const runId = newRunId();
    runRef.current = runId;
    setFollowed({ runId, shoot: s, live: true });
    try {
      const last = await api.call('batchQueueFollow', { runId, url: url.trim(), shoot: s.id });
      if (runRef.current === runId) setFollowed({ runId, shoot: last, live: false });
      // The list shows the shoot as it ended too.
      setShoots((all) => all?.map((x) => (x.id === last.id ? last : x)));
    } catch (e) {
      onError(asApiError(e));
      if (runRef.current === runId) setFollowed((f) => (f ? { ...f, live: false } : f));
    } finally {
      if (runRef.current === runId) runRef.current = undefined;
    }
  };

  const unfollow = () => {
    if (runRef.current) void api.call('batchQueueUnfollow', { runId: runRef.current }).catch((e) => onError(asApiError(e)));
  };
  const cancel = (s: QueuedShoot) => void api.call('batchQueueCancel', { url: url.trim(), shoot: s.id }).catch((e) => onError(asApiError(e)));

  const controls = (
    <section>
      <h3>Shoot queue</h3>
      <Field label="Queue" tip="A Redis that studio workers share: shoots sent with `studio batch --queue URL`, made by `studio worker --queue URL` on any machine.">
        <input type="text" className="text-input mono" value={url} spellCheck={false} placeholder="redis://studio-server:6379/0" data-testid="queue-url" onChange={(e) => setUrl(e.target.value)} />
      </Field>
      <div className="actions">
        <button type="button" className="btn wide" disabled={busy || !/^rediss?:\/\/\S+$/.test(url.trim())} onClick={() => void list()} data-testid="queue-list">Show shoots</button>
      </div>
    </section>
  );

  const view = (shoots || followed) && (
    <>
      {followed && <ShootCard s={followed.shoot} following={followed.live} onUnfollow={unfollow} onCancel={() => cancel(followed.shoot)} />}
      {shoots && (
        <section className="card batch-files" data-testid="queue-shoots">
          <header className="card-head"><h2>Shoots in the queue</h2><span className="dim">{shoots.length}</span></header>
          {shoots.length === 0 ? <p className="note dim">No shoots. Send one with <span className="mono">studio batch --queue {url.trim()} --in … --out …</span></p> : (
            <table className="table">
              <thead><tr><th>Shoot</th><th>Folders</th><th>State</th><th className="num">Done</th><th /></tr></thead>
              <tbody>
                {shoots.map((s) => (
                  <tr key={s.id} data-testid="queue-row" data-shoot={s.id}>
                    <td className="mono">{s.id}</td>
                    <td className="dim small">{s.inDir} → {s.outDir}</td>
                    <td>{s.state === 'cancelled' ? 'cancelled' : s.finished ? 'finished' : 'running'}</td>
                    <td className="num">{s.done + s.failedCount} / {s.total}</td>
                    <td><button type="button" className="btn" onClick={() => void follow(s)} data-testid="queue-follow">Follow</button></td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      )}
    </>
  );
  return { controls, view };
}
