/**
 * A strided view (shape, strides and offset in elements, as PyTorch and Torch7 store tensors) read into
 * a contiguous float32 array in C order, keeping the storage index incrementally. `read(j)` gives
 * storage element j; the caller has checked that every index the strides reach is inside the storage.
 */
export function gatherStrided(shape: readonly number[], strides: readonly number[], offset: number, read: (j: number) => number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const dims = shape.length;
  const idx = new Array<number>(dims).fill(0);
  let j = offset;
  for (let i = 0; i < n; i++) {
    out[i] = read(j);
    for (let d = dims - 1; d >= 0; d--) {
      idx[d]++;
      j += strides[d];
      if (idx[d] < shape[d]) break;
      j -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}
