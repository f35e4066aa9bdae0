import { validationError } from '../errors.js'

export interface IntRange {
  min: number
  max: number
  fallback: number
}

/** Strict integer query parameter: "10" yes, "10abc", "1e3" or out of range gets a 400. */
export function intParam (query: URLSearchParams, name: string, range: IntRange): number {
  const raw = query.get(name)
  if (raw === null || raw === '') return range.fallback
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN
  if (!(value >= range.min && value <= range.max)) {
    throw validationError([{ path: `?${name}`, message: `must be an integer from ${range.min} to ${range.max}` }])
  }
  return value
}

/** Query parameter from a fixed list: absent is undefined, anything else not listed gets a 400. */
export function oneOfParam<T extends string> (query: URLSearchParams, name: string, allowed: readonly T[]): T | undefined {
  const value = query.get(name) ?? undefined
  if (value === undefined || (allowed as readonly string[]).includes(value)) return value as T | undefined
  throw validationError([{ path: `?${name}`, message: `must be one of ${allowed.join(', ')}` }])
}

export function pageParams (query: URLSearchParams): { limit: number, offset: number } {
  return {
    limit: intParam(query, 'limit', { min: 1, max: 100, fallback: 50 }),
    offset: intParam(query, 'offset', { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0 })
  }
}
