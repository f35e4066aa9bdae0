import type { CacheKind, Coordinator } from '../coord/coordinator.js'
import { LookupCache } from './lookup-cache.js'

export interface AnnouncedCacheOptions {
  /** How long a value is served from memory; 0 reads the store every time. A backstop: changes are also announced. */
  ttlMs: number
  maxEntries: number
  /** Says a change to the other instances and hears theirs. */
  coordinator: Pick<Coordinator, 'cacheChanged' | 'onControl'>
  /** An announcement that could not be sent: the other instances then see the change within `ttlMs`. */
  onError: (err: unknown) => void
}

/**
 * A store read that the hot path makes per turn, kept in memory by key. A change made on this
 * instance updates or drops the key here at once and is announced through the coordinator, which
 * drops it on every other instance; the TTL bounds what a lost announcement (Redis away) can
 * leave stale. `keep` says which values are worth keeping (a miss may not be).
 */
export class AnnouncedCache<V> {
  readonly #kind: CacheKind
  readonly #opts: AnnouncedCacheOptions
  readonly #keep: (value: V) => boolean
  readonly #entries: LookupCache<V>
  /** Bumped by every change, so a read that raced one does not cache what it read before it. */
  #generation = 0

  constructor (kind: CacheKind, opts: AnnouncedCacheOptions, keep: (value: V) => boolean) {
    this.#kind = kind
    this.#opts = opts
    this.#keep = keep
    this.#entries = new LookupCache(opts.ttlMs, opts.maxEntries)
    opts.coordinator.onControl(({ type, id }) => {
      if (type === kind) this.#drop(id)
    })
  }

  async get (key: string, read: () => Promise<V>): Promise<V> {
    const now = performance.now()
    const cached = this.#entries.get(key, now)
    if (cached !== undefined) return cached.value
    const generation = this.#generation
    const value = await read()
    if (generation === this.#generation && this.#keep(value)) this.#entries.set(key, value, now)
    return value
  }

  /** `key` changed here: keep what it now is (or drop it), and have every other instance drop it. */
  async changed (key: string, value?: V): Promise<void> {
    this.#drop(key)
    if (value !== undefined) this.#entries.set(key, value, performance.now())
    await this.#opts.coordinator.cacheChanged(this.#kind, key).catch(this.#opts.onError)
  }

  #drop (key: string): void {
    this.#generation++
    this.#entries.delete(key)
  }
}
