import { forbidden, notFound } from '../errors.js'
import { readJsonBody } from '../http/body.js'
import { sendJson } from '../http/respond.js'
import type { Router } from '../http/router.js'
import { schemas, validator } from '../schemas.js'
import type { Principal } from '../auth/jwt.js'
import { hashApiKey, newApiKeySecret } from '../auth/api-keys.js'
import { parseTtl } from '../ttl.js'
import type { ApiKey, Store } from '../store/store.js'
import { authed, type AppContext } from './context.js'

interface CreateApiKey { name?: string, roles?: string[], ttl?: string }
const validateCreate = validator<CreateApiKey>(schemas.createApiKey)

/** Makes a key for `orgId`; the secret is in the answer only, never stored. */
export async function createApiKey (store: Store, orgId: string, input: CreateApiKey): Promise<ApiKey & { key: string }> {
  const secret = newApiKeySecret()
  const expiresAt = input.ttl === undefined ? null : new Date(Date.now() + parseTtl(input.ttl)).toISOString()
  const key = await store.createApiKey({ organization_id: orgId, name: input.name ?? 'api key', roles: input.roles ?? [], expires_at: expiresAt, key_hash: hashApiKey(secret) })
  return { ...key, key: secret }
}

/** Keys are managed by an admin of the org with a JWT: a key cannot mint or revoke keys. */
function mayManageKeys (principal: Principal): void {
  if (!principal.admin || principal.userId.startsWith('key:')) {
    throw forbidden('API keys are managed with a JWT that carries an admin role of the org')
  }
}

export function apiKeyRoutes (router: Router, app: AppContext): void {
  const { store, options } = app

  router.on('POST', '/api/v1/api-keys', authed(app, async ({ req, res, principal }) => {
    mayManageKeys(principal)
    const input = validateCreate(await readJsonBody(req, options.bodyLimitBytes))
    sendJson(res, 201, { data: await createApiKey(store, principal.orgId, input), success: true })
  }))

  router.on('GET', '/api/v1/api-keys', authed(app, async ({ res, principal }) => {
    mayManageKeys(principal)
    sendJson(res, 200, { data: await store.listApiKeys(principal.orgId), success: true })
  }))

  router.on('DELETE', '/api/v1/api-keys/:id', authed(app, async ({ res, params, principal }) => {
    mayManageKeys(principal)
    const id = params.id as string
    if (!await store.revokeApiKey(principal.orgId, id)) throw notFound('API key')
    sendJson(res, 200, { data: { id, message: 'API key revoked' }, success: true })
  }))
}
