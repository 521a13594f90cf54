/** Small argument helpers shared by the `studio` subcommands: typed numbers and lists with clear errors. */
import { StudioError } from '../errors.ts';

export function num(name: string, v: string | undefined, { int = false, min = -Infinity, max = Infinity } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min || n > max) {
    const range = `${min > -Infinity ? ` ≥ ${min}` : ''}${max < Infinity ? ` ≤ ${max}` : ''}`;
    throw new StudioError('BAD_ARGUMENT', `--${name} must be ${int ? 'an integer' : 'a number'}${range}, got "${v}"`);
  }
  return n;
}

export function list(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);
}

export function numList(name: string, v: string | undefined): number[] | undefined {
  return list(v)?.map((s) => num(name, s, { min: 0 })!);
}

export function oneOf<T extends string>(name: string, v: string | undefined, choices: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(choices as readonly string[]).includes(v)) {
    throw new StudioError('BAD_ARGUMENT', `--${name} must be one of ${choices.join(', ')}; got "${v}"`);
  }
  return v as T;
}

/** Drops undefined entries so schema defaults apply. */
export function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
