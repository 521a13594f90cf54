/**
 * Google Drive's download flow, as FastPhotoStyle's models are published there. A small file comes
 * straight back from `uc?export=download&id=…`; a large one first gets an HTML page ("can't scan this
 * file for viruses") whose form (newer pages: `download-form`, GET to drive.usercontent.google.com with
 * hidden id/export/confirm/uuid fields) or link (older pages: `uc?…&confirm=TOKEN`, sometimes only a
 * `download_warning_*` cookie holding the token) leads to the file. resolveDownload follows that until
 * the server offers the bytes, and returns that URL and the cookies it needs; fetch.ts's download() then
 * does the transfer with resume (the usercontent host honours Range).
 */
import http from 'node:http';
import https from 'node:https';
import { CancelledError, StudioError } from '../../errors.ts';

/** FastPhotoStyle's download script names this Drive file: models.zip, its Torch7 networks (import-photowct-t7.ts). */
export const PHOTOWCT_DRIVE_ID = '1ENgQm9TgabE1R99zhNf5q6meBvX6WFuq';

export function driveDownloadUrl(id: string): string {
  return `https://drive.google.com/uc?export=download&id=${encodeURIComponent(id)}`;
}

const ENTITIES: Record<string, string> = { amp: '&', quot: '"', apos: "'", lt: '<', gt: '>' };

/** HTML attribute text to its value (named entities Drive uses, decimal and hex references). */
export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (all, e: string) => {
    if (e[0] === '#') {
      const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return code <= 0x10ffff ? String.fromCodePoint(code) : all;
    }
    return ENTITIES[e.toLowerCase()] ?? all;
  });
}

function attributes(tag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of tag.matchAll(/([a-zA-Z_:-]+)\s*=\s*("([^"]*)"|'([^']*)'|([^\s>]+))/g)) {
    out.set(m[1].toLowerCase(), decodeEntities(m[3] ?? m[4] ?? m[5] ?? ''));
  }
  return out;
}

/**
 * Where a Drive interstitial page leads: its download form's action with the hidden fields as the
 * query (the form is GET), else a link carrying `confirm=`, else the token of a `download_warning`
 * cookie added to the page's own URL. Undefined when the page offers no way on (a quota or error page).
 */
export function confirmTarget(html: string, pageUrl: URL, cookies: Map<string, string> = new Map()): URL | undefined {
  for (const form of html.matchAll(/<form\b[^>]*>[\s\S]*?<\/form>/gi)) {
    const open = attributes(/^<form\b[^>]*>/i.exec(form[0])![0]);
    const fields = [...form[0].matchAll(/<input\b[^>]*>/gi)].map((m) => attributes(m[0]));
    const named = fields.filter((f) => f.has('name') && (f.get('type') ?? 'text').toLowerCase() === 'hidden');
    const isDownload = open.get('id') === 'download-form' || named.some((f) => f.get('name') === 'confirm');
    if (!isDownload || (open.get('method') ?? 'get').toLowerCase() !== 'get') continue;
    const target = new URL(open.get('action') || pageUrl.href, pageUrl);
    for (const f of named) target.searchParams.set(f.get('name')!, f.get('value') ?? '');
    return target;
  }
  for (const a of html.matchAll(/\bhref\s*=\s*("([^"]*)"|'([^']*)')/gi)) {
    const href = decodeEntities(a[2] ?? a[3] ?? '');
    if (/[?&]confirm=/.test(href)) return new URL(href, pageUrl);
  }
  for (const [name, value] of cookies) {
    if (name.startsWith('download_warning')) {
      const target = new URL(pageUrl.href);
      target.searchParams.set('confirm', value);
      return target;
    }
  }
  return undefined;
}

/** A page's <title>, for the error when it offers no download (Drive's quota page says why there). */
function titleOf(html: string): string | undefined {
  const t = /<title[^>]*>([\s\S]*?)<\/title>/i.exec(html)?.[1];
  return t ? decodeEntities(t).replace(/\s+/g, ' ').trim() : undefined;
}

export interface Resolved {
  url: string;
  /** Request headers the download needs (the cookies Drive set on the way). */
  headers: Record<string, string>;
}

function get(url: URL, headers: Record<string, string>, signal: AbortSignal | undefined, timeoutMs: number): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
    if (!mod) return reject(new StudioError('DOWNLOAD_FAILED', `cannot download ${url.href}: only http and https URLs are supported`));
    const req = mod.get(url, { headers: { 'user-agent': 'style-studio', ...headers }, signal }, resolve);
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no reply from ${url.host} in ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}

async function readText(res: http.IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    chunks.push(c as Buffer);
    n += (c as Buffer).length;
    if (n > limit) {
      res.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Follows redirects and Drive's confirmation pages from `start` until a reply that is not an HTML page:
 * that reply's URL is the file's (the reply itself is dropped; the download asks again, with Range).
 * Errors: DOWNLOAD_FAILED with Drive's own reason (quota exceeded, file gone) when it offers no file.
 */
export async function resolveDownload(start: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Resolved> {
  let url = new URL(start);
  const cookies = new Map<string, string>();
  const header = (): Record<string, string> => (cookies.size ? { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {});
  for (let hop = 0; hop < 12; hop++) {
    let res: http.IncomingMessage;
    try {
      res = await get(url, header(), opts.signal, opts.timeoutMs ?? 30_000);
    } catch (e) {
      if (opts.signal?.aborted) throw new CancelledError();
      throw e;
    }
    for (const c of res.headers['set-cookie'] ?? []) {
      const m = /^\s*([^=;\s]+)=([^;]*)/.exec(c);
      if (m) cookies.set(m[1], m[2]);
    }
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      url = new URL(res.headers.location, url);
      continue;
    }
    if (status >= 400) {
      res.resume();
      throw new StudioError('DOWNLOAD_FAILED', `cannot download ${url.href}: the server replied ${status} ${res.statusMessage ?? ''}`.trim());
    }
    if (!/text\/html/i.test(String(res.headers['content-type'] ?? ''))) {
      res.destroy(); // the file itself: download() fetches it with resume
      return { url: url.href, headers: header() };
    }
    const html = await readText(res, 2 ** 20);
    const next = confirmTarget(html, url, cookies);
    if (!next) {
      const why = titleOf(html);
      throw new StudioError('DOWNLOAD_FAILED', `${url.host} sent a page instead of the file${why ? `: "${why}"` : ''}`,
        'Google Drive limits downloads of popular files for a day; try again later, or download it in a browser and run `studio models import FILE`');
    }
    url = next;
  }
  throw new StudioError('DOWNLOAD_FAILED', `cannot download ${start}: too many redirects or confirmation pages`);
}
