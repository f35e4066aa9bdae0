import { AnnouncedCache, type AnnouncedCacheOptions } from './announced-cache.js'
import type { Agent, Store } from './store.js'

/**
 * Agents as the chat route reads them on every turn, kept in memory; a PUT or DELETE drops the
 * agent here and on every other instance (`AnnouncedCache`). Agents not found are not cached:
 * one created elsewhere is usable at once.
 */
export class AgentCache {
  readonly #store: Pick<Store, 'getAgent'>
  readonly #cache: AnnouncedCache<Agent | null>

  constructor (store: Pick<Store, 'getAgent'>, opts: AnnouncedCacheOptions) {
    this.#store = store
    this.#cache = new AnnouncedCache<Agent | null>('agent', opts, (agent) => agent !== null)
  }

  async get (orgId: string, agentId: string): Promise<Agent | null> {
    return await this.#cache.get(`${orgId}\0${agentId}`, async () => await this.#store.getAgent(orgId, agentId))
  }

  /** The agent was updated or deleted here: drop it, and have every other instance drop it. */
  async changed (orgId: string, agentId: string): Promise<void> {
    await this.#cache.changed(`${orgId}\0${agentId}`)
  }
}
