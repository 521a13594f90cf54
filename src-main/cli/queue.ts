/**
 * The queue's commands: `studio batch --queue URL …` (enqueue, then follow), `--status`, `--cancel`,
 * and `studio worker --queue URL`. The work itself is in queue/; this file prints.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { StudioError } from '../errors.ts';
import type { EnqueueOptions } from '../queue/enqueue.ts';
import type { ShootFollower, ShootStatus } from '../queue/follow.ts';
import { num } from './args.ts';
import { formatDuration } from './progress.ts';

const out = (line: string) => process.stderr.write(`${line}\n`);

function statusLine(s: ShootStatus): string {
  const total = s.shoot.planned ? `${s.total}` : `${s.total}+`;
  const eta = s.etaMs !== undefined && s.remaining > 0 ? `, about ${formatDuration(s.etaMs)} left` : '';
  return `${s.done} done${s.skipped ? ` (${s.skipped} made earlier)` : ''}, ${s.failed.length} failed, ${s.remaining} remaining of ${total}${eta}; ${s.connected} worker${s.connected === 1 ? '' : 's'} connected`;
}

function workerLines(s: ShootStatus): string[] {
  return s.workers.map((w) => `  ${w.name}: ${w.done} done${w.done ? `, ${formatDuration(w.msPerPhoto)} a photo` : ''}${w.running.length ? `, making ${w.running.join(', ')}` : ''}`);
}

/** Models and decoders given as paths travel as absolute paths (names are looked up on each worker). */
function absoluteIfPath(p: string | undefined): string | undefined {
  return p && (p.includes('/') || p.includes(path.sep) || p.startsWith('.')) ? path.resolve(p) : p;
}

export async function queueBatch(url: string, o: EnqueueOptions & { jobs?: number; backend?: string }, opts: { quiet: boolean }): Promise<number> {
  const { enqueueShoot } = await import('../queue/enqueue.ts');
  const { withFollower } = await import('../queue/follow.ts');
  // --jobs and --backend are the workers' own: not part of the shoot.
  const { jobs, backend, ...shootOptions } = o;
  if (jobs !== undefined || backend !== undefined) out('note: --jobs and --backend are each worker\'s own (studio worker --jobs N --backend NAME); the queue ignores them here');
  return withFollower(url, async (follower, target) => {
    const settings: EnqueueOptions = { ...shootOptions, model: absoluteIfPath(o.model), decoders: absoluteIfPath(o.decoders) };
    const r = await enqueueShoot(target, settings, opts.quiet ? undefined : (n) => process.stderr.isTTY && process.stderr.write(`\r\x1b[2Kplanning: ${n} photos`));
    if (process.stderr.isTTY && !opts.quiet) process.stderr.write('\r\x1b[2K');
    out(`shoot ${r.shoot.id}: ${r.shoot.total} photos (${r.added} new in the queue${r.retried ? `, ${r.retried} failed ones tried again` : ''}) at ${target.display}`);
    out(`  ${r.shoot.inDir} → ${r.shoot.outDir}; run \`studio worker --queue ${target.display}\` on each machine`);
    return followShoot(follower, r.shoot.id, opts.quiet);
  });
}

/** Follows a shoot on the terminal until it is done or Ctrl-C (which stops following, not the work). */
async function followShoot(follower: ShootFollower, id: string, quiet: boolean): Promise<number> {
  const stop = new AbortController();
  const onSigint = () => {
    out('\nstopped following; the workers go on. See: studio batch --queue URL --status');
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  let last = '';
  let lastPrint = 0;
  try {
    const s = await follower.follow(id, (s) => {
      if (quiet) return;
      const line = statusLine(s);
      const now = Date.now();
      if (line === last && now - lastPrint < 10_000) return;
      if (!process.stderr.isTTY && now - lastPrint < 2000 && !s.finished) return;
      last = line;
      lastPrint = now;
      out(line);
      if (process.stderr.isTTY || s.finished) for (const l of workerLines(s)) out(l);
    }, { signal: stop.signal }).catch((e: unknown) => {
      if (stop.signal.aborted) return undefined; // stopped before a first look (Redis away)
      throw e;
    });
    if (!s || stop.signal.aborted) return 130;
    process.stdout.write(`${s.done} done, ${s.failed.length} failed of ${s.total}${s.shoot.state === 'cancelled' ? ' (cancelled)' : ''}\n`);
    for (const f of s.failed) process.stdout.write(`failed: ${f.input}: ${f.reason}\n`);
    if (s.shoot.state === 'cancelled') {
      out('the shoot was cancelled; run the same command again to resume it');
      return 130;
    }
    return s.failed.length ? 3 : 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

export async function queueControl(url: string, o: { status: boolean; cancel: boolean; shoot?: string; inDir?: string; outDir?: string; json: boolean }): Promise<number> {
  const { withFollower } = await import('../queue/follow.ts');
  return withFollower(url, async (follower, target) => {
    const sel = { id: o.shoot, inDir: o.inDir && path.resolve(o.inDir), outDir: o.outDir && path.resolve(o.outDir) };
    if (o.cancel) {
      if (!o.shoot && !o.inDir && !o.outDir) throw new StudioError('BAD_ARGUMENT', '--cancel needs the shoot: --shoot ID (see --status) or the --in/--out folders of the shoot');
      for (const s of await follower.find(sel)) {
        await follower.cancel(s.id);
        out(`cancelled shoot ${s.id} (${s.inDir} → ${s.outDir}); results made so far stay; the same batch command resumes it`);
      }
      return 0;
    }
    const shoots = o.shoot || o.inDir || o.outDir ? await follower.find(sel) : await follower.shoots();
    const all = await Promise.all(shoots.map((s) => follower.status(s.id)));
    if (o.json) {
      process.stdout.write(`${JSON.stringify(all.map((s) => ({ ...s, shoot: { ...s.shoot } })), null, 2)}\n`);
      return 0;
    }
    if (!all.length) process.stdout.write(`no shoots in the queue at ${target.display}\n`);
    for (const s of all) {
      process.stdout.write(`shoot ${s.shoot.id} ${s.shoot.state === 'cancelled' ? '(cancelled) ' : s.finished ? '(finished) ' : ''}${s.shoot.inDir} → ${s.shoot.outDir}, ${s.shoot.settings.method}, from ${s.shoot.host}\n  ${statusLine(s)}\n`);
      for (const l of workerLines(s)) process.stdout.write(`${l}\n`);
      for (const f of s.failed) process.stdout.write(`  failed: ${f.input}: ${f.reason}\n`);
    }
    return 0;
  });
}

export async function workerCommand(argv: string[]): Promise<number> {
  let v;
  try {
    ({ values: v } = parseArgs({
      args: argv, strict: true,
      options: { queue: { type: 'string' }, jobs: { type: 'string' }, backend: { type: 'string' }, name: { type: 'string' }, 'path-map': { type: 'string', multiple: true }, quiet: { type: 'boolean' } },
    }));
  } catch (e) {
    throw new StudioError('BAD_ARGUMENT', (e as Error).message, 'see `studio --help`');
  }
  if (!v.queue) throw new StudioError('BAD_ARGUMENT', '--queue is required (redis://host:6379/0: the Redis the shoots were enqueued on)');
  const pathMap = (v['path-map'] ?? []).map((m): [string, string] => {
    const i = m.indexOf('=');
    if (i <= 0 || i === m.length - 1) throw new StudioError('BAD_ARGUMENT', `--path-map ${m}: give FROM=TO (the shared folder as the enqueuing machine sees it = as this one does)`);
    return [m.slice(0, i), m.slice(i + 1)];
  });
  const { parseQueueUrl, checkReachable } = await import('../queue/connection.ts');
  const { QueueWorker } = await import('../queue/worker.ts');
  const target = parseQueueUrl(v.queue);
  await checkReachable(target);
  const quiet = v.quiet === true;
  const worker = new QueueWorker(target, { jobs: num('jobs', v.jobs, { int: true, min: 1, max: 16 }), backend: v.backend, name: v.name, pathMap, log: out }, (e) => {
    if (quiet) return;
    const what = e.outcome === 'done' ? `done     ${e.input} (${formatDuration(e.ms ?? 0)})`
      : e.outcome === 'skipped' ? `skipped  ${e.input} (${e.reason})`
      : e.outcome === 'returned' ? `returned ${e.input} to the queue (${e.reason})` : `FAILED   ${e.input}: ${e.reason}`;
    out(what);
  });
  out(`worker ${worker.name} on ${target.display}; Ctrl-C hands its photos back and stops`);
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) process.exit(130);
    out('\nstopping: handing the photos in progress back to the queue…');
    void worker.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await worker.run();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await worker.close();
  }
  return 0;
}
