/**
 * The WebSocket's message framing, used by the server and by the renderer: JSON for the structure,
 * with every Uint8Array (images, uploads) carried as raw bytes after it rather than as base64.
 * Frame: u32 (little-endian) length of the JSON, the JSON (UTF-8), then the byte arrays back to back;
 * in the JSON each array is {"$bin": offset, "n": length}. Browser-safe.
 */

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export function encodeFrame(value: unknown): Uint8Array {
  const blobs: Uint8Array[] = [];
  let offset = 0;
  const json = JSON.stringify(value, (_k, v: unknown) => {
    if (v instanceof Uint8Array) {
      const ref = { $bin: offset, n: v.byteLength };
      blobs.push(v);
      offset += v.byteLength;
      return ref;
    }
    return v;
  });
  const head = new TextEncoder().encode(json);
  const frame = new Uint8Array(4 + head.byteLength + offset);
  new DataView(frame.buffer).setUint32(0, head.byteLength, true);
  frame.set(head, 4);
  let at = 4 + head.byteLength;
  for (const b of blobs) {
    frame.set(b, at);
    at += b.byteLength;
  }
  return frame;
}

export function decodeFrame(frame: Uint8Array): unknown {
  if (frame.byteLength < 4) throw new Error('frame too short');
  const len = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0, true);
  if (4 + len > frame.byteLength) throw new Error('frame header longer than the frame');
  const body = frame.subarray(4 + len);
  const json = new TextDecoder().decode(frame.subarray(4, 4 + len));
  return JSON.parse(json, (_k, v: Json) => {
    if (v && typeof v === 'object' && !Array.isArray(v) && typeof v.$bin === 'number' && typeof v.n === 'number' && Object.keys(v).length === 2) {
      const start = v.$bin;
      const end = start + v.n;
      if (!(Number.isInteger(start) && start >= 0 && Number.isInteger(end) && end <= body.byteLength)) throw new Error('byte array outside the frame');
      return body.slice(start, end);
    }
    return v;
  });
}

/** Messages on the socket. */
export type ClientMessage = { t: 'call'; id: number; method: string; payload: unknown };
export type ServerMessage =
  | { t: 'reply'; id: number; reply: unknown }
  | { t: 'event'; event: unknown };
