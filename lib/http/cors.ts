import type { IncomingMessage } from 'node:http'
import { corsOriginList } from '../config.js'
import type { AppResponse } from './response.js'

/** What a browser app may send: the auth, resume and idempotency headers beside the safelisted ones. */
const ALLOW_HEADERS = 'Authorization, Content-Type, Accept, Cache-Control, Last-Event-ID, Idempotency-Key, X-API-Key, X-Request-Id'
const EXPOSE_HEADERS = 'X-Request-Id, Retry-After'
/** Browsers cap this anyway (Chromium at 2 h); 10 min keeps a changed list from lingering. */
const MAX_AGE = '600'

/**
 * CORS for the origins configured in CORS_ORIGINS: an allowed origin gets its own origin back
 * (never `*`, so the answer is the same with and without credentials), every other origin gets
 * no CORS header at all and the browser refuses the response. Pure header logic, no routing.
 */
export class Cors {
  readonly #origins: '*' | ReadonlySet<string>
  readonly #credentials: boolean

  constructor (origins: string, credentials: boolean) {
    const list = corsOriginList(origins)
    this.#origins = list === '*' ? '*' : new Set(list)
    this.#credentials = credentials
  }

  #allowed (origin: string | undefined): origin is string {
    return origin !== undefined && (this.#origins === '*' || this.#origins.has(origin))
  }

  /** Headers every response carries; true when the request came from an allowed origin. */
  decorate (req: IncomingMessage, res: AppResponse): boolean {
    // The answer depends on Origin whether or not this one is allowed, so caches must key on it.
    res.vary('Origin')
    const origin = req.headers.origin
    if (!this.#allowed(origin)) return false
    res.carry('Access-Control-Allow-Origin', origin)
    res.carry('Access-Control-Expose-Headers', EXPOSE_HEADERS)
    if (this.#credentials) res.carry('Access-Control-Allow-Credentials', 'true')
    return true
  }

  /** The extra headers of a preflight answer (`decorate` already ran). */
  preflight (req: IncomingMessage, res: AppResponse, methods: string[]): void {
    if (!this.#allowed(req.headers.origin) || req.headers['access-control-request-method'] === undefined) return
    res.carry('Access-Control-Allow-Methods', methods.join(', '))
    res.carry('Access-Control-Allow-Headers', ALLOW_HEADERS)
    res.carry('Access-Control-Max-Age', MAX_AGE)
  }
}
