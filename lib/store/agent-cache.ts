import type { Coordinator } from '../coord/coordinator.js'
import { LookupCache } from './lookup-cache.js'
import type { Agent, Store } from './store.js'

export interface AgentCacheOptions {
  /** How long an agent is served from memory; 0 reads the store every time. A backstop: changes are also announced. */
  ttlMs: number
  maxEntries: number
  /** Says a change to the other instances and hears theirs. */
  coordinator: Pick<Coordinator, 'agentChanged' | 'onControl'>
  /** An announcement that could not be sent: the other instances then see the change within `ttlMs`. */
  onError: (err: unknown) => void
}

/**
 * Agents as the chat route reads them on every turn, kept in memory. An agent changed or deleted
 * on this instance is dropped here at once and announced through the coordinator, which drops it
 * on every other instance; the TTL bounds what a lost announcement (Redis away) can leave stale.
 * Agents not found are not cached: one created elsewhere is usable at once.
 */
export class AgentCache {
  readonly #store: Pick<Store, 'getAgent'>
  readonly #opts: AgentCacheOptions
  readonly #entries: LookupCache<Agent>
  /** Bumped by every change, so a read that raced one does not cache what it read before it. */
  #generation = 0

  constructor (store: Pick<Store, 'getAgent'>, opts: AgentCacheOptions) {
    this.#store = store
    this.#opts = opts
    this.#entries = new LookupCache(opts.ttlMs, opts.maxEntries)
    opts.coordinator.onControl(({ type, id }) => {
      if (type === 'agent') this.#drop(id)
    })
  }

  async get (orgId: string, agentId: string): Promise<Agent | null> {
    const key = `${orgId}\0${agentId}`
    const now = performance.now()
    const cached = this.#entries.get(key, now)
    if (cached !== undefined) return cached.value
    const generation = this.#generation
    const agent = await this.#store.getAgent(orgId, agentId)
    if (agent !== null && generation === this.#generation) this.#entries.set(key, agent, now)
    return agent
  }

  /** The agent was updated or deleted here: drop it, and have every other instance drop it. */
  async changed (orgId: string, agentId: string): Promise<void> {
    this.#drop(`${orgId}\0${agentId}`)
    await this.#opts.coordinator.agentChanged(orgId, agentId).catch(this.#opts.onError)
  }

  #drop (key: string): void {
    this.#generation++
    this.#entries.delete(key)
  }
}
