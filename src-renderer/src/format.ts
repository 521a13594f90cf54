/** Small display helpers. */

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 ** 2).toFixed(1)} MB`;
}

export function blobUrl(bytes: Uint8Array, type = 'image/jpeg'): string {
  return URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type }));
}

export function newRunId(): string {
  return crypto.randomUUID();
}

/** What to do next, per error code, where the message's own hint is not enough. */
export function nextStep(code: string): string | undefined {
  switch (code) {
    case 'MODEL_MISSING': return 'Open the Models panel to fetch VGG19 or import a weights file.';
    case 'BAD_MODEL': case 'CHECKSUM_MISMATCH': return 'Open the Models panel and import or fetch the weights again.';
    case 'NOT_AN_IMAGE': case 'CORRUPT_IMAGE': case 'EMPTY_IMAGE': case 'UNSUPPORTED_FORMAT':
      return 'Choose another file: JPEG, PNG, TIFF or WebP.';
    case 'IMAGE_TOO_LARGE': return 'Lower the size, or use a smaller image.';
    case 'IMAGE_TOO_SMALL': return 'Raise the size, or crop the image to a less narrow shape.';
    case 'INTERNAL': return 'Your images and settings are kept: try again, or with a smaller size.';
    default: return undefined;
  }
}

export const ERROR_TITLES: Record<string, string> = {
  FILE_NOT_FOUND: 'File not found', NOT_AN_IMAGE: 'Not an image', CORRUPT_IMAGE: 'The image is damaged',
  EMPTY_IMAGE: 'The image is empty', IMAGE_TOO_LARGE: 'Too large', IMAGE_TOO_SMALL: 'Too small or too thin', UNSUPPORTED_FORMAT: 'Format not supported',
  UNWRITABLE_OUTPUT: 'Cannot save there', OUTPUT_IS_INPUT: 'That would overwrite an original', BAD_ARGUMENT: 'Check the settings',
  BAD_FILE: 'Cannot read the file', MODEL_MISSING: 'No model installed', BAD_MODEL: 'The model is damaged',
  CHECKSUM_MISMATCH: 'Download damaged', DOWNLOAD_FAILED: 'Download failed', BACKEND_UNAVAILABLE: 'Compute backend unavailable',
  INTERNAL: 'Something went wrong',
};
