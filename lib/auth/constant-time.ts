import { timingSafeEqual } from 'node:crypto'

/** Constant-time comparison, so a guessed token learns nothing from timing. */
export function tokenMatches (given: string, expected: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}
