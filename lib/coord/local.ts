import { ConcurrencyLimiter, type AcquireResult, type ConcurrencyLimits } from '../limits/concurrency.js'
import type { Coordinator, RemoteStream, StreamFeed } from './coordinator.js'

/** One instance on its own: limits are counted in memory and no stream lives anywhere else. */
export class LocalCoordinator implements Coordinator {
  readonly kind = 'local'
  readonly #limiter: ConcurrencyLimiter
  /** Idempotency keys by expiry: a Map keeps insertion order, and every key gets the same TTL from its caller. */
  readonly #keys = new Map<string, { value: string, expires: number }>()

  constructor (limits: ConcurrencyLimits) {
    this.#limiter = new ConcurrencyLimiter(limits)
  }

  async acquire (tenant: string): Promise<AcquireResult> {
    return this.#limiter.tryAcquire(tenant)
  }

  share (): StreamFeed | null {
    return null
  }

  async find (): Promise<RemoteStream | null> {
    return null
  }

  async cancel (): Promise<void> {}

  async cacheChanged (): Promise<void> {}

  async claimKey (key: string, value: string, ttlMs: number): Promise<string | null> {
    const now = Date.now()
    // Expired keys go first (oldest first), so the map holds at most the keys of one TTL.
    for (const [k, entry] of this.#keys) {
      if (entry.expires > now) break
      this.#keys.delete(k)
    }
    const held = this.#keys.get(key)
    if (held !== undefined) return held.value
    this.#keys.set(key, { value, expires: now + ttlMs })
    return null
  }

  async setKey (key: string, value: string): Promise<void> {
    const held = this.#keys.get(key)
    if (held !== undefined) held.value = value
  }

  async releaseKey (key: string): Promise<void> {
    this.#keys.delete(key)
  }

  onControl (): void {}

  async ping (): Promise<void> {}

  async close (): Promise<void> {}
}
