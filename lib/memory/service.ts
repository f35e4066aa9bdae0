import type { AbortSource } from '../cancel.js'
import type { EveryKey } from '../every-key.js'
import type { Embedder } from '../llm/provider.js'
import { AnnouncedCache, type AnnouncedCacheOptions } from '../store/announced-cache.js'
import type { Memory, MemoryInput, MemoryPatch, Store } from '../store/store.js'
import type { MemoryDecision } from './extractor.js'
import { cosineSimilarity, reciprocalRankFusion } from './retrieval.js'

export interface MemoryScope {
  orgId: string
  agentId: string
  userId: string
}

/** What a turn did to memory, as announced in `memory_update`. */
export interface MemoryOp {
  op: 'ADD' | 'UPDATE'
  id: string
  content: string
  previous?: string
}

/** How many embedded memories a vector search scans; beyond this, the newest win. */
const VECTOR_SCAN = 2000

/**
 * Memory reads and writes in one place, so every writer (API, tools, extraction) embeds the
 * same way and every reader ranks the same way: BM25 alone, or BM25 fused with vectors.
 */
export class MemoryService {
  readonly store: Store
  readonly #embedder: Embedder | undefined
  /** Whether a user has any memories, kept for a while so a turn for a user with none skips the search. */
  readonly #presence: { cache: AnnouncedCache<boolean>, probe: NonNullable<Store['hasMemories']> } | undefined

  /** Without `presence` (or a store without `hasMemories`) every turn searches. */
  constructor (store: Store, embedder?: Embedder, presence?: AnnouncedCacheOptions) {
    this.store = store
    this.#embedder = embedder
    const probe = store.hasMemories
    this.#presence = presence === undefined || probe === undefined
      ? undefined
      : { cache: new AnnouncedCache('memories', presence, () => true), probe: probe.bind(store) }
  }

  async #embed (text: string, signal: AbortSignal): Promise<number[] | null> {
    if (this.#embedder === undefined) return null
    const [vector] = await this.#embedder.embed([text], signal)
    return vector as number[]
  }

  async add (scope: MemoryScope, input: MemoryInput, signal: AbortSignal): Promise<Memory> {
    const embedding = await this.#embed(input.content, signal)
    // Key by key, not `{ ...input, embedding }` (see EveryKey).
    const withVector: EveryKey<MemoryInput> = {
      user_id: input.user_id, session_id: input.session_id, content: input.content, memory_type: input.memory_type,
      importance: input.importance, metadata: input.metadata, embedding
    }
    const memory = await this.store.addMemory(scope.orgId, scope.agentId, withVector)
    // This instance knows at once; the others drop what they knew and probe again.
    await this.#presence?.cache.changed(scopeKey(scope), true)
    return memory
  }

  async update (orgId: string, memoryId: string, patch: MemoryPatch, signal: AbortSignal): Promise<Memory | null> {
    const embedding = patch.content === undefined ? undefined : await this.#embed(patch.content, signal)
    return await this.store.updateMemory(orgId, memoryId, embedding === undefined ? patch : { ...patch, embedding })
  }

  /** Carries out an extractor's decisions; an UPDATE of an id it was not shown becomes an ADD. */
  async apply (scope: MemoryScope, sessionId: string, decisions: MemoryDecision[], existing: Memory[], signal: AbortSignal): Promise<MemoryOp[]> {
    const shown = new Map(existing.map((m) => [m.id, m]))
    const ops: MemoryOp[] = []
    for (const d of decisions) {
      if (d.action === 'NOOP') continue
      const target = d.action === 'UPDATE' && d.target_id !== null ? shown.get(d.target_id) : undefined
      if (target !== undefined) {
        const updated = await this.update(scope.orgId, target.id, { content: d.content, memory_type: d.memory_type, importance: d.importance }, signal)
        if (updated !== null) ops.push({ op: 'UPDATE', id: updated.id, content: updated.content, previous: target.content })
        continue
      }
      const added = await this.add(scope, {
        user_id: scope.userId, session_id: sessionId, content: d.content, memory_type: d.memory_type, importance: d.importance, metadata: { source: 'extraction' }
      }, signal)
      ops.push({ op: 'ADD', id: added.id, content: added.content })
    }
    return ops
  }

  /** `abort`'s signal is read only to embed the query: a scope with no memories, or no embedder, needs none. */
  async retrieve (scope: MemoryScope, query: string, limit: number, abort: AbortSource): Promise<Memory[]> {
    const { orgId, agentId, userId } = scope
    const presence = this.#presence
    if (presence !== undefined && !await presence.cache.get(scopeKey(scope), async () => await presence.probe(orgId, agentId, userId))) return []
    const byText = await this.store.searchMemories(orgId, agentId, { query, userId, limit: limit * 2 })
    if (this.#embedder === undefined) return byText.slice(0, limit)
    const queryVector = await this.#embed(query, abort.signal) as number[]
    const vectors = await this.store.memoryVectors(orgId, agentId, userId, VECTOR_SCAN)
    const byVector = vectors
      .map((v) => ({ id: v.id, score: cosineSimilarity(queryVector, v.embedding) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, limit * 2)
    const ids = reciprocalRankFusion([byText.map((m) => m.id), byVector.map((v) => v.id)]).slice(0, limit)
    const known = new Map(byText.map((m) => [m.id, m]))
    const missing = ids.filter((id) => !known.has(id))
    for (const m of await this.store.getMemoriesByIds(orgId, missing)) known.set(m.id, m)
    return ids.map((id) => known.get(id)).filter((m): m is Memory => m !== undefined)
  }
}

const scopeKey = (scope: MemoryScope): string => `${scope.orgId}\0${scope.agentId}\0${scope.userId}`
