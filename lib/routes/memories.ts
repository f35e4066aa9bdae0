import { notFound } from '../errors.js'
import { readJsonBody } from '../http/body.js'
import { intParam, oneOfParam, pageParams } from '../http/query.js'
import { sendJson } from '../http/respond.js'
import type { Router } from '../http/router.js'
import { MEMORY_TYPE_SPELLINGS, memoryTypeOf, schemas, validator } from '../schemas.js'
import { MEMORY_SORTS, type Memory, type MemoryInput, type MemoryPatch, type MemoryQuery, type MemoryType } from '../store/store.js'
import type { Principal } from '../auth/jwt.js'
import { actingUser, listedUser, mayActFor } from '../auth/access.js'
import { authed, type AppContext } from './context.js'

type CreateMemory = Omit<MemoryInput, 'user_id' | 'embedding'> & { user_id?: string }
type CreateOrgMemory = CreateMemory & { agent_id: string }
interface SearchMemories {
  query: string
  agent_id?: string
  user_id?: string
  memory_type?: MemoryType
  limit?: number
  offset?: number
  min_importance?: number
  threshold?: number
}

const validateCreate = validator<CreateMemory>(schemas.createMemory)
const validateCreateInOrg = validator<CreateOrgMemory>(schemas.createOrgMemory)
const validateUpdate = validator<MemoryPatch>(schemas.updateMemory)
const validateSearch = validator<SearchMemories>(schemas.searchMemories)

/** How deep a search ranks each agent's memories, so `total` and `has_more` mean what they say. */
const SEARCH_DEPTH = 500

/** Memories found for a query, with a score from their rank in the retrieval (1 for the best). */
type Scored = Memory & { score: number }

/**
 * Memory routes in two families with one implementation: agent-scoped (listing and search
 * under an agent) and AgentMem's org-wide ones (`/api/v1/memories…`, the shapes its UI, SDKs
 * and MCP tools use). Everything is org-scoped and confined to the caller's user (access.ts).
 */
export function memoryRoutes (router: Router, app: AppContext): void {
  const { store, memories, options } = app
  const signal = (): AbortSignal => AbortSignal.timeout(options.embeddingTimeoutMs)

  async function agentOf (orgId: string, agentId: string): Promise<string> {
    const agent = await store.getAgent(orgId, agentId)
    if (agent === null) throw notFound('Agent')
    return agent.id
  }

  async function create (principal: Principal, agentId: string, input: CreateMemory): Promise<Memory> {
    const agent = await agentOf(principal.orgId, agentId)
    const userId = actingUser(principal, input.user_id)
    return await memories.add({ orgId: principal.orgId, agentId: agent, userId }, { ...input, user_id: userId }, signal())
  }

  /** The memory, when the principal may act for its user; another user's answers like a missing one. */
  async function ownMemory (principal: Principal, id: string): Promise<Memory> {
    const memory = await store.getMemory(principal.orgId, id)
    if (memory === null || !mayActFor(principal, memory.user_id)) throw notFound('Memory')
    return memory
  }

  /** The retrieval the chat uses, over one agent or every agent of the org, best first. */
  async function search (principal: Principal, request: SearchMemories, want: number): Promise<Scored[]> {
    const userId = actingUser(principal, request.user_id)
    const agents = request.agent_id === undefined
      ? (await store.listAgents(principal.orgId, { limit: 100, offset: 0 })).map((a) => a.id)
      : [await agentOf(principal.orgId, request.agent_id)]
    const found: Scored[] = []
    for (const agentId of agents) {
      const ranked = await memories.retrieve({ orgId: principal.orgId, agentId, userId }, request.query, want, { signal: signal() })
      // Object.assign, not `{ ...m, score }`: see test/hidden-classes.test.ts.
      ranked.forEach((m, rank) => found.push(Object.assign({}, m, { score: 1 / (rank + 1) })))
    }
    return found
      .filter((m) => (request.memory_type === undefined || m.memory_type === request.memory_type) &&
        m.importance >= (request.min_importance ?? 0) && m.score >= (request.threshold ?? 0))
      .sort((a, b) => b.score - a.score)
  }

  // Agent-scoped family.
  router.on('POST', '/api/v1/agents/:id/memories', authed(app, async ({ req, res, params, principal }) => {
    const input = validateCreate(await readJsonBody(req, options.bodyLimitBytes))
    sendJson(res, 201, { data: await create(principal, params.id as string, normalized(input)), success: true })
  }))

  router.on('GET', '/api/v1/agents/:id/memories', authed(app, async ({ res, params, query, principal }) => {
    const agentId = await agentOf(principal.orgId, params.id as string)
    const userId = listedUser(principal, query.get('user_id') ?? undefined)
    const { memories: page } = await store.listMemories(principal.orgId, { ...pageParams(query), agentId, userId })
    sendJson(res, 200, { data: page, success: true })
  }))

  router.on('GET', '/api/v1/agents/:id/memories/search', authed(app, async ({ res, params, query, principal }) => {
    const q = query.get('q') ?? ''
    const limit = intParam(query, 'limit', { min: 1, max: 50, fallback: 10 })
    const found = q === '' ? [] : await search(principal, { query: q, agent_id: params.id as string, user_id: query.get('user_id') ?? undefined }, limit)
    sendJson(res, 200, { data: found.slice(0, limit).map(({ score: _score, ...m }) => m), success: true })
  }))

  // AgentMem's org-wide family.
  router.on('POST', '/api/v1/memories', authed(app, async ({ req, res, principal }) => {
    const { agent_id: agentId, ...input } = validateCreateInOrg(await readJsonBody(req, options.bodyLimitBytes))
    const memory = await create(principal, agentId, normalized(input))
    sendJson(res, 201, { data: { id: memory.id, message: 'Memory created' }, success: true })
  }))

  router.on('GET', '/api/v1/memories', authed(app, async ({ res, query, principal }) => {
    const page = intParam(query, 'page', { min: 0, max: 1_000_000, fallback: 0 })
    const limit = intParam(query, 'limit', { min: 1, max: 100, fallback: 20 })
    const agentId = query.get('agent_id') ?? undefined
    if (agentId !== undefined) await agentOf(principal.orgId, agentId)
    const type = oneOfParam(query, 'memory_type', MEMORY_TYPE_SPELLINGS)
    const memoryQuery: MemoryQuery = {
      agentId,
      userId: listedUser(principal, query.get('user_id') ?? undefined),
      memoryType: type === undefined ? undefined : memoryTypeOf(type),
      sortBy: oneOfParam(query, 'sort_by', MEMORY_SORTS),
      order: oneOfParam(query, 'order', ['asc', 'desc'] as const),
      limit,
      offset: page * limit
    }
    const { memories: found, total } = await store.listMemories(principal.orgId, memoryQuery)
    sendJson(res, 200, { data: { memories: found, pagination: { page, limit, total, total_pages: Math.ceil(total / limit) } }, success: true })
  }))

  router.on('POST', '/api/v1/memories/search', authed(app, async ({ req, res, principal }) => {
    const request = normalized(validateSearch(await readJsonBody(req, options.bodyLimitBytes)))
    const limit = request.limit ?? 10
    const offset = request.offset ?? 0
    // Enough for a true total in any reasonable listing; past it, total counts what was ranked.
    const found = await search(principal, request, Math.max(offset + limit, SEARCH_DEPTH))
    const results = found.slice(offset, offset + limit)
    sendJson(res, 200, { data: { results, total: found.length, offset, limit, has_more: offset + results.length < found.length }, success: true })
  }))

  // One memory, both families.
  router.on('GET', '/api/v1/memories/:id', authed(app, async ({ res, params, principal }) => {
    sendJson(res, 200, { data: await ownMemory(principal, params.id as string), success: true })
  }))

  router.on('PUT', '/api/v1/memories/:id', authed(app, async ({ req, res, params, principal }) => {
    const patch = normalized(validateUpdate(await readJsonBody(req, options.bodyLimitBytes)))
    const { id } = await ownMemory(principal, params.id as string)
    const memory = await memories.update(principal.orgId, id, patch, signal())
    if (memory === null) throw notFound('Memory') // deleted since it was read
    sendJson(res, 200, { data: memory, success: true })
  }))

  // 200 with a body, as AgentMem answers (its UI reads the JSON of every answer).
  router.on('DELETE', '/api/v1/memories/:id', authed(app, async ({ res, params, principal }) => {
    const { id } = await ownMemory(principal, params.id as string)
    await store.deleteMemory(principal.orgId, id)
    sendJson(res, 200, { data: { id, message: 'Memory deleted' }, success: true })
  }))
}

/** AgentMem's SDKs send memory types in lowercase; the store keeps one spelling. */
function normalized<T extends { memory_type?: MemoryType }> (input: T): T {
  return input.memory_type === undefined ? input : { ...input, memory_type: memoryTypeOf(input.memory_type) }
}
