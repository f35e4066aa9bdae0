import { notFound, validationError } from '../errors.js'
import { readJsonBody } from '../http/body.js'
import { pageParams } from '../http/query.js'
import { sendJson, sendNoContent } from '../http/respond.js'
import type { Router } from '../http/router.js'
import { schemas, validator } from '../schemas.js'
import type { AgentInput, AgentPatch } from '../store/store.js'
import { authed, type AppContext } from './context.js'

const validateCreate = validator<AgentInput>(schemas.createAgent)
const validateUpdate = validator<AgentPatch>(schemas.updateAgent)

/** Keys of `llm_config` that would make the server hold a tenant's secret or call a tenant's URL. */
const REFUSED_LLM_KEYS = ['api_key', 'apiKey', 'base_url', 'baseURL', 'base_uri', 'api_base', 'endpoint']

export function agentRoutes (router: Router, app: AppContext): void {
  const { store, options } = app

  /** The agent body, checked beyond its schema: no upstream secrets or URLs, and the provider this server runs. */
  function checked<T extends AgentPatch> (input: T): T {
    const config = input.llm_config
    if (config === undefined) return input
    const refused = REFUSED_LLM_KEYS.filter((k) => k in config)
    if (refused.length > 0) {
      throw validationError(refused.map((k) => ({ path: `/llm_config/${k}`, message: 'is not accepted: the upstream and its credentials are the server\'s configuration (OPENAI_BASE_URL, OPENAI_API_KEY), never a tenant\'s' })))
    }
    if (config.provider !== undefined && config.provider !== app.llmProvider) {
      throw validationError([{ path: '/llm_config/provider', message: `must be ${app.llmProvider}, the provider this server is configured with` }])
    }
    return input
  }

  router.on('POST', '/api/v1/agents', authed(app, async ({ req, res, principal }) => {
    const input = checked(validateCreate(await readJsonBody(req, options.bodyLimitBytes)))
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
    const patch = checked(validateUpdate(await readJsonBody(req, options.bodyLimitBytes)))
    const agent = await store.updateAgent(principal.orgId, params.id as string, patch)
    if (agent === null) throw notFound('Agent')
    await app.agents.changed(principal.orgId, agent.id)
    sendJson(res, 200, { data: agent, success: true })
  }))

  router.on('DELETE', '/api/v1/agents/:id', authed(app, async ({ res, params, principal }) => {
    if (!await store.deleteAgent(principal.orgId, params.id as string)) throw notFound('Agent')
    await app.agents.changed(principal.orgId, params.id as string)
    sendNoContent(res)
  }))
}
