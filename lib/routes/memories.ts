import { notFound } from '../errors.js'
import { readJsonBody } from '../http/body.js'
import { intParam, pageParams } from '../http/query.js'
import { sendJson, sendNoContent } from '../http/respond.js'
import type { Router } from '../http/router.js'
import { schemas, validator } from '../schemas.js'
import type { Memory, MemoryInput, MemoryPatch } from '../store/store.js'
import type { Principal } from '../auth/jwt.js'
import { actingUser, listedUser, mayActFor } from '../auth/access.js'
import { authed, type AppContext } from './context.js'

type CreateMemory = Omit<MemoryInput, 'user_id' | 'embedding'> & { user_id?: string }

const validateCreate = validator<CreateMemory>(schemas.createMemory)
const validateUpdate = validator<MemoryPatch>(schemas.updateMemory)

/** Memory routes: agent-scoped for listing and search, id-scoped for one memory; all org-scoped. */
export function memoryRoutes (router: Router, app: AppContext): void {
  const { store, memories, options } = app

  async function agentOf (orgId: string, agentId: string): Promise<string> {
    const agent = await store.getAgent(orgId, agentId)
    if (agent === null) throw notFound('Agent')
    return agent.id
  }

  router.on('POST', '/api/v1/agents/:id/memories', authed(app, async ({ req, res, params, principal }) => {
    const input = validateCreate(await readJsonBody(req, options.bodyLimitBytes))
    const agentId = await agentOf(principal.orgId, params.id as string)
    const userId = actingUser(principal, input.user_id)
    const memory = await memories.add({ orgId: principal.orgId, agentId, userId }, { ...input, user_id: userId }, AbortSignal.timeout(options.toolTimeoutMs))
    sendJson(res, 201, { data: memory, success: true })
  }))

  router.on('GET', '/api/v1/agents/:id/memories', authed(app, async ({ res, params, query, principal }) => {
    const agentId = await agentOf(principal.orgId, params.id as string)
    const userId = listedUser(principal, query.get('user_id') ?? undefined)
    sendJson(res, 200, { data: await store.listMemories(principal.orgId, agentId, { ...pageParams(query), userId }), success: true })
  }))

  router.on('GET', '/api/v1/agents/:id/memories/search', authed(app, async ({ res, params, query, principal }) => {
    const agentId = await agentOf(principal.orgId, params.id as string)
    const q = query.get('q') ?? ''
    const limit = intParam(query, 'limit', { min: 1, max: 50, fallback: 10 })
    const userId = actingUser(principal, query.get('user_id') ?? undefined)
    const found = await memories.retrieve({ orgId: principal.orgId, agentId, userId }, q, limit, AbortSignal.timeout(options.toolTimeoutMs))
    sendJson(res, 200, { data: found, success: true })
  }))

  /** The memory, when the principal may act for its user; another user's answers like a missing one. */
  async function ownMemory (principal: Principal, id: string): Promise<Memory> {
    const memory = await store.getMemory(principal.orgId, id)
    if (memory === null || !mayActFor(principal, memory.user_id)) throw notFound('Memory')
    return memory
  }

  router.on('GET', '/api/v1/memories/:id', authed(app, async ({ res, params, principal }) => {
    sendJson(res, 200, { data: await ownMemory(principal, params.id as string), success: true })
  }))

  router.on('PUT', '/api/v1/memories/:id', authed(app, async ({ req, res, params, principal }) => {
    const patch = validateUpdate(await readJsonBody(req, options.bodyLimitBytes))
    const { id } = await ownMemory(principal, params.id as string)
    const memory = await memories.update(principal.orgId, id, patch, AbortSignal.timeout(options.toolTimeoutMs))
    if (memory === null) throw notFound('Memory') // deleted meanwhile
    sendJson(res, 200, { data: memory, success: true })
  }))

  router.on('DELETE', '/api/v1/memories/:id', authed(app, async ({ res, params, principal }) => {
    const { id } = await ownMemory(principal, params.id as string)
    if (!await store.deleteMemory(principal.orgId, id)) throw notFound('Memory') // deleted meanwhile
    sendNoContent(res)
  }))
}
