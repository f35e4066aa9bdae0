/**
 * Lookups kept for `ttlMs` (or less, see `set`), at most `maxEntries` of them (the oldest go
 * first), so what the hot path looks up per request (a store read, a token's verification) is
 * done once per key per TTL. Pure: callers pass the clock. A TTL of 0 keeps nothing.
 */
export class LookupCache<V> {
  readonly #ttlMs: number
  readonly #maxEntries: number
  readonly #entries = new Map<string, { value: V, until: number }>()

  constructor (ttlMs: number, maxEntries: number) {
    this.#ttlMs = ttlMs
    this.#maxEntries = maxEntries
  }

  /** The entry for `key` while it is fresh (its value may itself be a miss, such as null). */
  get (key: string, now: number): { value: V } | undefined {
    const entry = this.#entries.get(key)
    return entry !== undefined && entry.until > now ? entry : undefined
  }

  /** Keeps `value` for the TTL, or until `expiresAt` when that comes first. */
  set (key: string, value: V, now: number, expiresAt = Infinity): void {
    if (this.#ttlMs === 0) return
    // Insertion order is age order: re-inserted, the key is the newest; past the bound, the oldest goes.
    this.#entries.delete(key)
    this.#entries.set(key, { value, until: Math.min(now + this.#ttlMs, expiresAt) })
    if (this.#entries.size > this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value as string)
  }

  delete (key: string): void {
    this.#entries.delete(key)
  }
}
