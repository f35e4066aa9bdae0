import { ConcurrencyLimiter, type AcquireResult, type ConcurrencyLimits } from '../limits/concurrency.js'
import type { Coordinator, RemoteStream, StreamFeed } from './coordinator.js'

/** One instance on its own: limits are counted in memory and no stream lives anywhere else. */
export class LocalCoordinator implements Coordinator {
  readonly kind = 'local'
  readonly #limiter: ConcurrencyLimiter

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

  onControl (): void {}

  async ping (): Promise<void> {}

  async close (): Promise<void> {}
}
