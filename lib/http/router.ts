import type { IncomingMessage } from 'node:http'
import { badRequest, methodNotAllowed, notFound } from '../errors.js'
import { storableText } from './body.js'
import type { AppResponse } from './response.js'

export interface RequestContext {
  req: IncomingMessage
  res: AppResponse
  params: Record<string, string>
  query: URLSearchParams
}

export type Handler = (ctx: RequestContext) => Promise<void>

interface Route {
  segments: string[]
  handlers: Map<string, Handler>
}

/** Segment matcher for a handful of routes: `:name` captures one decoded path segment. */
export class Router {
  readonly #routes: Route[] = []

  on (method: string, pattern: string, handler: Handler): this {
    const segments = pattern.split('/').filter(Boolean)
    let route = this.#routes.find((r) => r.segments.join('/') === segments.join('/'))
    if (route === undefined) {
      route = { segments, handlers: new Map() }
      this.#routes.push(route)
      // Literal segments before parameters, position by position, so the most specific route matches first.
      this.#routes.sort((a, b) => specificity(b.segments) - specificity(a.segments))
    }
    route.handlers.set(method, handler)
    return this
  }

  /** Every registered method and pattern, for docs and tests. */
  routes (): Array<{ method: string, pattern: string }> {
    return this.#routes.flatMap((r) => [...r.handlers.keys()].map((method) => ({ method, pattern: '/' + r.segments.join('/') })))
  }

  /**
   * The methods the path answers, over every route that matches it (for OPTIONS, Allow and 405),
   * so they agree with `find`: GET /memories/search is the :id route's GET. 404 when none matches.
   */
  methods (url: string): string[] {
    const parts = pathOf(url).split('/').filter(Boolean)
    const matching = this.#routes.filter((r) => match(r.segments, parts) !== null)
    if (matching.length === 0) throw notFound('Route')
    return [...new Set(matching.flatMap(allowed))]
  }

  /** Throws the 404/405/400 the caller should send. */
  find (method: string, url: string): { handler: Handler, params: Record<string, string>, query: URLSearchParams } {
    const queryAt = url.indexOf('?')
    const query = queryOf(queryAt === -1 ? '' : url.slice(queryAt + 1))
    const parts = pathOf(url).split('/').filter(Boolean)
    // A literal segment wins over a parameter: POST /memories/search is not POST /memories/:id.
    for (const route of this.#routes) {
      const params = match(route.segments, parts)
      if (params === null) continue
      // HEAD is GET without the body (RFC 9110 §9.3.2); Node sends no body for it.
      const handler = route.handlers.get(method) ?? (method === 'HEAD' ? route.handlers.get('GET') : undefined)
      if (handler !== undefined) return { handler, params, query }
    }
    // No route takes this method (methods() throws the 404 when no route matches at all).
    throw methodNotAllowed(this.methods(url))
  }
}

/** Query values as the stores can keep them (see storableText): `%00` names nothing anywhere. */
function queryOf (search: string): URLSearchParams {
  const query = new URLSearchParams(search)
  if (!search.includes('%00')) return query
  return new URLSearchParams([...query].map(([k, v]): [string, string] => [storableText(k), storableText(v)]))
}

/** Higher for literal segments early in the path. */
function specificity (segments: string[]): number {
  return segments.reduce((score, seg, i) => score + (seg.startsWith(':') ? 0 : 2 ** (16 - i)), 0)
}

function allowed (route: Route): string[] {
  const methods = [...route.handlers.keys()]
  return methods.includes('GET') ? [...methods, 'HEAD'] : methods
}

function pathOf (url: string): string {
  const queryAt = url.indexOf('?')
  return queryAt === -1 ? url : url.slice(0, queryAt)
}

function match (segments: string[], parts: string[]): Record<string, string> | null {
  if (segments.length !== parts.length) return null
  const params: Record<string, string> = {}
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as string
    const part = parts[i] as string
    if (seg.startsWith(':')) params[seg.slice(1)] = decode(part)
    else if (seg !== part) return null
  }
  return params
}

function decode (part: string): string {
  try {
    return storableText(decodeURIComponent(part))
  } catch {
    throw badRequest('Malformed percent-encoding in path')
  }
}
