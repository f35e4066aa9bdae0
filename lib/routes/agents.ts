import { notFound } from '../errors.js'
import { readJsonBody } from '../http/body.js'
import { pageParams } from '../http/query.js'
import { sendJson, sendNoContent } from '../http/respond.js'
import type { Router } from '../http/router.js'
import { schemas, validator } from '../schemas.js'
import type { AgentInput, AgentPatch } from '../store/store.js'
import { authed, type AppContext } from './context.js'

const validateCreate = validator<AgentInput>(schemas.createAgent)
const validateUpdate = validator<AgentPatch>(schemas.updateAgent)

export function agentRoutes (router: Router, app: AppContext): void {
  const { store, options } = app

  router.on('POST', '/api/v1/agents', authed(app, async ({ req, res, principal }) => {
    const input = validateCreate(await readJsonBody(req, options.bodyLimitBytes))
    sendJson(res, 201, { data: await store.createAgent(principal.orgId, input), success: true })
  }))

  router.on('GET', '/api/v1/agents', authed(app, async ({ res, query, principal }) => {
    sendJson(res, 200, { data: await store.listAgents(principal.orgId, pageParams(query)), success: true })
  }))

  router.on('GET', '/api/v1/agents/:id', authed(app, async ({ res, params, principal }) => {
    const agent = await store.getAgent(principal.orgId, params.id as string)
    if (agent === null) throw notFound('Agent')
    sendJson(res, 200, { data: agent, success: true })
  }))

  router.on('PUT', '/api/v1/agents/:id', authed(app, async ({ req, res, params, principal }) => {
    const patch = validateUpdate(await readJsonBody(req, options.bodyLimitBytes))
    const agent = await store.updateAgent(principal.orgId, params.id as string, patch)
    if (agent === null) throw notFound('Agent')
    sendJson(res, 200, { data: agent, success: true })
  }))

  router.on('DELETE', '/api/v1/agents/:id', authed(app, async ({ res, params, principal }) => {
    if (!await store.deleteAgent(principal.orgId, params.id as string)) throw notFound('Agent')
    sendNoContent(res)
  }))
}
