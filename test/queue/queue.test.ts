/**
 * The queue end to end: real `studio batch --queue` and `studio worker` processes on a Redis of the
 * test's own (Debian's redis-server on a free loopback port), colour match at a small size.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { checkReachable, parseQueueUrl, PREFIX } from '../../src-main/queue/connection.ts';
import { jobId, queueName, ShootStore, shootId } from '../../src-main/queue/shoots.ts';
import { mapSharedPath } from '../../src-main/queue/worker.ts';
import { closedLoopbackPort } from '../loopback.ts';
import { redisMissing, startRedis, type TestRedis } from '../redis.ts';

const samples = path.resolve('assets/samples');
/** Reported as skipped with its reason where there is no redis-server (never in CI). */
const skip = redisMissing() ?? false;
const style = path.join(samples, 'photo-Dune.jpg');
let dir = '';

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'studio-queue-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** Lock and stalled check in seconds, not BullMQ's 30 s, so that a killed worker's photo comes back quickly. */
const ENV = { ...process.env, STUDIO_QUEUE_LOCK_MS: '2000', STUDIO_QUEUE_BACKOFF_MS: '100', STUDIO_WASM_THREADS: '1' };

interface Proc { p: ChildProcess; out: () => string; exit: Promise<number> }

/** Every job the shoot's queue holds, in any state. */
async function countJobs(queue: Queue): Promise<number> {
  const c = await queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized', 'waiting-children');
  return Object.values(c).reduce((a, b) => a + b, 0);
}

function studio(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const p = spawn(process.execPath, [path.resolve('bin/studio.mjs'), ...args], { env: { ...ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  p.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exit = new Promise<number>((r) => p.once('exit', (code, sig) => r(code ?? (sig ? 128 : 1))));
  return { p, out: () => text, exit };
}

const worker = (url: string, name: string) => studio(['worker', '--queue', url, '--name', name, '--backend', 'wasm']);
const batchArgs = (url: string | undefined, inDir: string, outDir: string) => [
  'batch', ...(url ? ['--queue', url] : ['--backend', 'wasm']), '--in', inDir, '--out', outDir, '--style', style, '--method', 'match', '--size', '160', '--recursive',
];

/** n photos of a few hundred pixels, each its own colours; `corrupt` adds a file that is not an image. */
async function makeShoot(root: string, n: number, corrupt = false): Promise<void> {
  await mkdir(path.join(root, 'day two'), { recursive: true });
  const sources = ['content-coffee.jpg', 'content-chelsea.jpg', 'content-astronaut.jpg', 'content-rocket.jpg'];
  for (let k = 0; k < n; k++) {
    const rel = k % 5 === 4 ? path.join('day two', `IMG_${k}.jpg`) : `IMG_${k}.jpg`;
    await sharp(path.join(samples, sources[k % 4])).resize(320).modulate({ hue: 23 * k, saturation: 0.8 + 0.02 * k }).jpeg().toFile(path.join(root, rel));
  }
  if (corrupt) await writeFile(path.join(root, 'broken.jpg'), (await readFile(path.join(samples, 'content-coffee.jpg'))).subarray(0, 3000));
}

async function filesUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(path.relative(root, path.join(e.parentPath, e.name)));
  return out.sort();
}

const sha = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex');

/** "done     IMG_3.jpg (1s)" lines of worker logs: how many times each photo was made. */
function madeCounts(logs: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const log of logs) for (const [, input] of log.matchAll(/^done {5}(.+) \(\d/gm)) m.set(input, (m.get(input) ?? 0) + 1);
  return m;
}

async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function shootOf(redis: TestRedis): Promise<{ id: string; queue: Queue; store: ShootStore; close(): Promise<void> }> {
  const client = new Redis(redis.port, '127.0.0.1');
  const store = new ShootStore(client);
  await until('the shoot to be registered', async () => (await store.list()).length > 0);
  const id = (await store.list())[0].id;
  const queue = new Queue(queueName(id), { connection: { port: redis.port, host: '127.0.0.1' }, prefix: PREFIX });
  return { id, queue, store, close: async () => { await queue.close(); client.disconnect(); } };
}

test('queue URLs: password, TLS, database; bad ones are refused by name; an unreachable queue is an error, not a hang', { skip }, async () => {
  const t = parseQueueUrl('redis://:s%40cret@host.lan:6380/3');
  assert.deepEqual([t.connection.host, t.connection.port, t.connection.db, t.connection.password, t.connection.tls], ['host.lan', 6380, 3, 's@cret', undefined]);
  assert.equal(t.display, 'redis://:***@host.lan:6380/3', 'the password never reaches a message');
  const tls = parseQueueUrl('rediss://user:pw@redis.example.com');
  assert.equal(tls.connection.port, 6379);
  assert.equal(tls.connection.username, 'user');
  assert.deepEqual(tls.connection.tls, { servername: 'redis.example.com' });
  assert.deepEqual(parseQueueUrl('rediss://10.0.0.5:6380').connection.tls, {}, 'no SNI name for an IP address');
  assert.throws(() => parseQueueUrl('http://host:6379'), /only redis:\/\/ and rediss:\/\//);
  // --path-map: whole folder names only, trailing separators ignored, the first match wins.
  const map: [string, string][] = [['/mnt/share/', '/Volumes/share/'], ['/mnt/other', 'D:\\other']];
  assert.equal(mapSharedPath('/mnt/share/day 1/a.jpg', map), '/Volumes/share/day 1/a.jpg');
  assert.equal(mapSharedPath('/mnt/share', map), '/Volumes/share');
  assert.equal(mapSharedPath('/mnt/shared/a.jpg', map), '/mnt/shared/a.jpg', 'not a prefix of a longer name');
  assert.equal(mapSharedPath('/mnt/other/x.jpg', map), 'D:\\other/x.jpg');
  assert.throws(() => parseQueueUrl('redis://host/abc'), /database "abc"/);
  assert.throws(() => parseQueueUrl('not a url'), /not a URL/);
  const closed = await closedLoopbackPort();
  await assert.rejects(checkReachable(parseQueueUrl(`redis://127.0.0.1:${closed}/0`), 2000), /cannot use the queue at redis:\/\/127\.0\.0\.1:\d+\/0: .*ECONNREFUSED/);
  const redis = await startRedis({ password: 'pa ss' });
  try {
    await assert.rejects(checkReachable(parseQueueUrl(`redis://127.0.0.1:${redis.port}/0`)), (e: Error & { hint?: string }) => /NOAUTH|Authentication/i.test(e.message) && /redis:\/\/:PASSWORD@host/.test(e.hint ?? ''));
    await checkReachable(parseQueueUrl(redis.url)); // the password in the URL (percent-encoded)
  } finally {
    await redis.stop();
  }
  // Job ids: the same photo, settings and place give the same id; any of them changed, another.
  const a = jobId('s1', 'fp', 'abc', 'x.jpg');
  assert.equal(a, jobId('s1', 'fp', 'abc', 'x.jpg'));
  assert.equal(new Set([a, jobId('s1', 'fp2', 'abc', 'x.jpg'), jobId('s1', 'fp', 'abd', 'x.jpg'), jobId('s1', 'fp', 'abc', 'y.jpg')]).size, 4);
  assert.notEqual(shootId('fp', '/in', '/out'), shootId('fp', '/in', '/out2'));
});

test('3 workers, 40 photos, one killed mid-photo: every photo made exactly once, no temporary file left, files identical to a local batch', { timeout: 600_000, skip }, async () => {
  const redis = await startRedis();
  const inDir = path.join(dir, 'kill-in'), outDir = path.join(dir, 'kill-out');
  await makeShoot(inDir, 40);
  const workers = [worker(redis.url, 'w1'), worker(redis.url, 'w2'), worker(redis.url, 'victim')];
  const batch = studio(batchArgs(redis.url, inDir, outDir));
  const s = await shootOf(redis);
  try {
    // The victim is killed while it is making a photo (after it has made at least one).
    let victimJob = '';
    await until('the victim to be mid-photo', async () => {
      if (!/^done /m.test(workers[2].out())) return false;
      const active = await s.queue.getActive();
      victimJob = active.find((j) => j.processedBy === 'victim')?.id ?? '';
      return victimJob !== '';
    });
    workers[2].p.kill('SIGKILL');
    const code = await batch.exit;
    assert.equal(code, 0, batch.out());
    assert.match(batch.out(), /40 done, 0 failed of 40/);
    assert.match(batch.out(), /w1: \d+ done/);

    // The victim's photo was taken over after the stalled check and finished by another worker.
    const taken = await s.queue.getJob(victimJob);
    assert.equal(await taken!.getState(), 'completed');
    assert.notEqual((taken!.returnvalue as { worker: string }).worker, 'victim');
    assert.ok(taken!.attemptsStarted >= 2, 'started again after the kill');
    const counts = await s.queue.getJobCounts('completed', 'failed', 'waiting', 'active');
    assert.deepEqual(counts, { completed: 40, failed: 0, waiting: 0, active: 0 });

    // Made exactly once each, across all three workers' logs (the victim's finished photos included).
    await Promise.all(workers.slice(0, 2).map((w) => { w.p.kill('SIGINT'); return w.exit; }));
    const made = madeCounts(workers.map((w) => w.out()));
    assert.equal(made.size, 40, 'every photo made');
    assert.deepEqual([...made.values()].filter((n) => n !== 1), [], 'none made twice');
    assert.ok((madeCounts([workers[0].out()]).size > 0) && (madeCounts([workers[1].out()]).size > 0), 'both survivors worked');

    // The output folder: 40 results (the tree mirrored), no temporary file, hashes as recorded.
    const outs = await filesUnder(outDir);
    assert.equal(outs.length, 40, outs.join(', '));
    assert.deepEqual(outs.filter((f) => f.endsWith('.tmp') || path.basename(f).startsWith('.')), []);
    const done = await s.store.allDone(s.id);
    for (const [input, rec] of done) assert.equal(await sha(path.join(outDir, rec.output)), rec.sha256, input);

    // The same shoot run locally gives identical files.
    const localOut = path.join(dir, 'kill-local');
    const local = studio([...batchArgs(undefined, inDir, localOut), '--jobs', '2']);
    assert.equal(await local.exit, 0, local.out());
    for (const f of outs) assert.equal(await sha(path.join(localOut, f)), await sha(path.join(outDir, f)), `${f}: queue and local results differ`);
  } finally {
    for (const w of workers) w.p.kill('SIGKILL');
    batch.p.kill('SIGKILL');
    await s.close();
    await redis.stop();
  }
});

test('Redis restarted mid-shoot (append-only file on): the shoot goes on; a corrupt photo fails with its reason after bounded tries', { timeout: 600_000, skip }, async () => {
  const redis = await startRedis();
  const inDir = path.join(dir, 'restart-in'), outDir = path.join(dir, 'restart-out');
  await makeShoot(inDir, 14, true);
  const workers = [worker(redis.url, 'a'), worker(redis.url, 'b')];
  const batch = studio(batchArgs(redis.url, inDir, outDir));
  try {
    await until('3 photos made', () => madeCounts(workers.map((w) => w.out())).size >= 3);
    await redis.restart({ downMs: 1500 });
    const code = await batch.exit;
    assert.equal(code, 3, `a failed photo exits 3:\n${batch.out()}`);
    assert.match(batch.out(), /14 done, 1 failed of 15/);
    assert.match(batch.out(), /failed: broken\.jpg: (CORRUPT_IMAGE|NOT_AN_IMAGE): .*broken\.jpg.*\(worker (a|b)\)/);
    await Promise.all(workers.map((w) => { w.p.kill('SIGINT'); return w.exit; }));
    const made = madeCounts(workers.map((w) => w.out()));
    // Every photo made; one whose completion Redis lost may be found made already, never made twice.
    assert.equal(made.size, 14);
    assert.deepEqual([...made.values()].filter((n) => n !== 1), []);
    // Three tries are recorded; a try that ends while Redis is down cannot record its failure, and the
    // photo is tried once more when its lock lapses (seen once in CI: 4). Bounded either way.
    const tries = workers.map((w) => w.out()).join('').match(/FAILED {3}broken\.jpg/g)?.length ?? 0;
    assert.ok(tries >= 3 && tries <= 4, `three tries (one more if one ended during the restart), then failed: ${tries}`);
    assert.equal((await filesUnder(outDir)).length, 14);
  } finally {
    for (const w of workers) w.p.kill('SIGKILL');
    batch.p.kill('SIGKILL');
    await redis.stop();
  }
});

test('two batch commands enqueue the same shoot at once: one job a photo; cancel stops it, the same command resumes it', { timeout: 600_000, skip }, async () => {
  const redis = await startRedis();
  const inDir = path.join(dir, 'twice-in'), outDir = path.join(dir, 'twice-out');
  await makeShoot(inDir, 16);
  await copyFile(path.join(inDir, 'IMG_0.jpg'), path.join(inDir, 'IMG_0 copy.jpg')); // the same photo twice: two results
  const first = studio(batchArgs(redis.url, inDir, outDir)), second = studio(batchArgs(redis.url, inDir, outDir));
  const s = await shootOf(redis);
  try {
    await until('both to have planned', () => /shoot \w+: 17 photos/.test(first.out()) && /shoot \w+: 17 photos/.test(second.out()));
    assert.equal(await countJobs(s.queue), 17, 'enqueued twice, one job a photo');
    const added = [first.out(), second.out()].map((o) => Number(/\((\d+) new in the queue/.exec(o)![1]));
    assert.equal(added[0] + added[1], 17, `the two commands added ${added} jobs`);
    assert.equal(new Set([first.out(), second.out()].map((o) => /shoot (\w+):/.exec(o)![1])).size, 1, 'the same shoot');

    // Ctrl-C on a follower stops following, not the work.
    second.p.kill('SIGINT');
    assert.equal(await second.exit, 130);
    assert.match(second.out(), /stopped following; the workers go on/);

    // A worker with two engines.
    const w = studio(['worker', '--queue', redis.url, '--name', 'solo', '--backend', 'wasm', '--jobs', '2']);
    await until('2 photos made', () => madeCounts([w.out()]).size >= 2);
    const cancel = studio(['batch', '--queue', redis.url, '--cancel', '--in', inDir, '--out', outDir]);
    assert.equal(await cancel.exit, 0, cancel.out());
    assert.match(cancel.out(), /cancelled shoot \w+/);
    assert.equal(await first.exit, 130, first.out());
    assert.match(first.out(), /run the same command again to resume/);
    await until('the worker to let go of the shoot', async () => (await s.queue.getJobCounts('active')).active === 0);
    const c = await s.queue.getJobCounts('waiting', 'active', 'completed');
    assert.equal(c.waiting + c.active, 0, 'nothing left to take');
    const madeBefore = (await filesUnder(outDir)).length;
    assert.ok(madeBefore >= 2 && madeBefore < 17, `${madeBefore} results when cancelled`);
    assert.deepEqual((await filesUnder(outDir)).filter((f) => f.endsWith('.tmp')), []);
    const status = studio(['batch', '--queue', redis.url, '--status']);
    assert.equal(await status.exit, 0);
    assert.match(status.out(), new RegExp(`shoot ${s.id} \\(cancelled\\)`));

    const again = studio(batchArgs(redis.url, inDir, outDir));
    assert.equal(await again.exit, 0, again.out());
    assert.match(again.out(), /17 done, 0 failed of 17/);
    w.p.kill('SIGINT');
    assert.equal(await w.exit, 0);
    assert.deepEqual([...madeCounts([w.out()]).values()].filter((n) => n !== 1), [], 'nothing made twice across the cancel');
    assert.equal((await filesUnder(outDir)).length, 17);
  } finally {
    for (const p of [first, second]) p.p.kill('SIGKILL');
    await s.close();
    await redis.stop();
  }
});

test('rediss:// with a password: a shoot over TLS; a worker that cannot see the files says so in the job and leaves the shoot to the others', { timeout: 600_000, skip }, async () => {
  const redis = await startRedis({ tls: true, password: 's3cret' });
  const inDir = path.join(dir, 'tls-in'), outDir = path.join(dir, 'tls-out');
  await makeShoot(inDir, 6);
  const trusted = { NODE_EXTRA_CA_CERTS: redis.caFile! };
  const run = (args: string[], env: NodeJS.ProcessEnv = trusted) => studio(args, env);
  const workers: Proc[] = [];
  try {
    // Without the CA the server's certificate is refused, by name; with it, the queue answers.
    const untrusted = run(['batch', '--queue', redis.url, '--status'], {});
    assert.equal(await untrusted.exit, 2);
    assert.match(untrusted.out(), /cannot use the queue at rediss:\/\/:\*\*\*@localhost:\d+\/0: .*(self[- ]signed|certificate)/i);
    assert.doesNotMatch(untrusted.out(), /s3cret/);
    const empty = run(['batch', '--queue', redis.url, '--status']);
    assert.equal(await empty.exit, 0, empty.out());
    assert.match(empty.out(), /no shoots in the queue/);

    // "blind" sees the share under another path (a mount that is not there): its tries fail with the reason.
    workers.push(run(['worker', '--queue', redis.url, '--name', 'blind', '--backend', 'wasm', '--path-map', `${dir}=/nonexistent/share`]));
    await until('the blind worker to connect', () => /^worker blind on/m.test(workers[0].out()));
    const batch = run(batchArgs(redis.url, inDir, outDir));
    await until('the blind worker to leave the shoot', () => /leaving shoot \w+ for a minute: cannot reach the shoot's files/.test(workers[0].out()));
    assert.match(workers[0].out(), /FAILED {3}IMG_\d+\.jpg: FILE_NOT_FOUND: .*\/nonexistent\/share\/.*\(worker blind\)/);
    workers.push(run(['worker', '--queue', redis.url, '--name', 'sighted', '--backend', 'wasm']));
    assert.equal(await batch.exit, 0, batch.out());
    assert.match(batch.out(), /6 done, 0 failed of 6/);
    assert.equal(madeCounts([workers[0].out()]).size, 0, 'the blind worker made nothing');
    // The jobs themselves keep the failed tries' reasons.
    const id = /shoot (\w+):/.exec(batch.out())![1];
    const q = new Queue(queueName(id), { connection: { host: 'localhost', port: redis.port, password: 's3cret', tls: { ca: await readFile(redis.caFile!) } }, prefix: PREFIX });
    const jobs = await q.getCompleted();
    await q.close();
    const reasons = jobs.flatMap((j) => j.stacktrace ?? []).concat(jobs.map((j) => j.failedReason ?? ''));
    assert.ok(reasons.some((r) => /FILE_NOT_FOUND: .*\(worker blind\)/.test(r)), `no job recorded the blind worker's failure: ${JSON.stringify(reasons)}`);
    assert.equal((await filesUnder(outDir)).length, 6);
  } finally {
    for (const w of workers) w.p.kill('SIGKILL');
    await redis.stop();
  }
});

test('Ctrl-C on a worker mid-photo hands the photo back untried: waiting again, no try used, nothing written', { timeout: 600_000, skip }, async () => {
  const redis = await startRedis();
  const inDir = path.join(dir, 'handback-in'), outDir = path.join(dir, 'handback-out');
  await makeShoot(inDir, 1);
  const { writeTinyFixtures } = await import('../../src-main/engine/models/tiny.ts');
  const model = (await writeTinyFixtures(path.join(dir, 'handback-model'))).modelDir;
  // An artistic photo of many iterations: it is surely mid-way when the worker is stopped.
  const args = (iters: number) => ['batch', '--queue', redis.url, '--in', inDir, '--out', outDir, '--style', style, '--method', 'gatys', '--size', '32', '--iters', String(iters), '--model', model];
  const send = studio(args(100000));
  const s = await shootOf(redis);
  const early = worker(redis.url, 'early');
  try {
    await until('early to be mid-photo', async () => /iter|done|returned/.test(early.out()) || (await s.queue.getActive()).some((j) => j.processedBy === 'early'));
    await new Promise((r) => setTimeout(r, 1500)); // well into the iterations
    const [job] = await s.queue.getActive();
    assert.equal(job?.processedBy, 'early');
    early.p.kill('SIGINT');
    assert.equal(await early.exit, 0, early.out());
    assert.match(early.out(), /returned IMG_0\.jpg to the queue \(this worker stopped\)/);
    const back = await s.queue.getJob(job.id!);
    assert.equal(await back!.getState(), 'waiting');
    assert.equal(back!.attemptsMade, 0, 'handing back uses none of the photo\'s tries');
    assert.deepEqual(await filesUnder(outDir), [], 'no result and no temporary file');
  } finally {
    early.p.kill('SIGKILL');
    send.p.kill('SIGKILL');
    await s.close();
    await redis.stop();
  }
});

test('sending a shoot again after photos were added keeps every output name it gave (a colliding newcomer gets the next suffix)', { timeout: 600_000, skip }, async () => {
  const redis = await startRedis();
  const inDir = path.join(dir, 'names-in'), outDir = path.join(dir, 'names-out');
  await mkdir(inDir, { recursive: true });
  await sharp(path.join(samples, 'content-coffee.jpg')).resize(200).jpeg().toFile(path.join(inDir, 'a.jpg'));
  const send = () => studio([...batchArgs(redis.url, inDir, outDir), '--format', 'jpeg']);
  const w = worker(redis.url, 'namer');
  try {
    const first = send();
    assert.equal(await first.exit, 0, first.out());
    const before = await sha(path.join(outDir, 'a-photo-Dune.jpg'));
    // A PNG of the same name: with --format jpeg its result would be a-photo-Dune.jpg too.
    await sharp(path.join(samples, 'content-rocket.jpg')).resize(200).png().toFile(path.join(inDir, 'a.png'));
    const second = send();
    assert.equal(await second.exit, 0, second.out());
    assert.match(second.out(), /2 done, 0 failed of 2/);
    assert.deepEqual(await filesUnder(outDir), ['a-photo-Dune-2.jpg', 'a-photo-Dune.jpg']);
    assert.equal(await sha(path.join(outDir, 'a-photo-Dune.jpg')), before, "a.jpg's result is untouched");
    const s = await shootOf(redis);
    const done = await s.store.allDone(s.id);
    assert.deepEqual([...done].map(([i, r]) => [i, r.output]).sort(), [['a.jpg', 'a-photo-Dune.jpg'], ['a.png', 'a-photo-Dune-2.jpg']]);
    await s.close();
  } finally {
    w.p.kill('SIGKILL');
    await redis.stop();
  }
});
