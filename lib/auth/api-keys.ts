import { createHash, randomBytes } from 'node:crypto'
import { LookupCache } from '../store/lookup-cache.js'
import type { IncomingMessage } from 'node:http'
import { unauthorized } from '../errors.js'
import type { ApiKey, Store } from '../store/store.js'
import type { Authenticate, Principal } from './jwt.js'

/** AgentMem's API keys: `agm_` and 32 hex characters (128 random bits). */
const KEY_FORMAT = /^agm_[0-9a-f]{32}$/

export function newApiKeySecret (): string {
  return `agm_${randomBytes(16).toString('hex')}`
}

/** Only this is stored: the secret itself is shown once, when the key is made. */
export function hashApiKey (secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}

export interface ApiKeyAuthOptions {
  /** How long a lookup is trusted: a revoked key stops working on every instance within this. */
  cacheTtlMs: number
  /** Lookups kept at most (the oldest go first), so random keys cannot grow the cache without bound. */
  maxCached: number
  adminRoles: ReadonlySet<string>
}

/** The same answer for unknown, revoked and expired keys: which one it was is nobody's business. */
const invalidKey = (): Error => unauthorized('Invalid API key')

/**
 * Authenticates API keys against the store, through a short-lived cache of lookups (hits and
 * misses alike), so the store sees at most one lookup per key per `cacheTtlMs` and an unknown
 * key costs what a known one does: one hash and one lookup.
 */
export class ApiKeyAuthenticator {
  readonly #store: Store
  readonly #opts: ApiKeyAuthOptions
  readonly #cache: LookupCache<ApiKey | null>

  constructor (store: Store, opts: ApiKeyAuthOptions) {
    this.#store = store
    this.#opts = opts
    this.#cache = new LookupCache(opts.cacheTtlMs, opts.maxCached)
  }

  async authenticate (secret: string): Promise<Principal> {
    if (!KEY_FORMAT.test(secret)) throw invalidKey()
    const hash = hashApiKey(secret)
    const now = Date.now()
    let key = this.#cache.get(hash, now)?.value
    if (key === undefined) {
      key = await this.#store.findApiKey(hash)
      this.#cache.set(hash, key, now)
      if (key !== null) await this.#store.touchApiKey(key.id, new Date(now).toISOString())
    }
    if (key === null || key.revoked_at !== null || (key.expires_at !== null && Date.parse(key.expires_at) <= now)) throw invalidKey()
    return { userId: `key:${key.id}`, orgId: key.organization_id, roles: key.roles, admin: key.roles.some((r) => this.#opts.adminRoles.has(r)) }
  }
}

export type AuthenticateRequest = (req: IncomingMessage) => Promise<Principal>

/**
 * Who a request is: an API key in `X-API-Key` or as the bearer token (AgentMem's SDKs send
 * `Authorization: Bearer agm_…`), else a JWT.
 */
export function requestAuthenticator (jwt: Authenticate, keys: ApiKeyAuthenticator): AuthenticateRequest {
  return async (req) => {
    const header = req.headers['x-api-key']
    if (typeof header === 'string') return await keys.authenticate(header.trim())
    const authorization = req.headers.authorization
    const bearer = authorization === undefined ? null : /^bearer +(agm_\S*)\s*$/i.exec(authorization)
    if (bearer !== null) return await keys.authenticate(bearer[1] as string)
    return jwt(authorization)
  }
}
