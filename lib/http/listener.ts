import http from 'node:http'
import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { AuthenticateRequest } from '../auth/api-keys.js'
import { badRequest, HttpError, payloadTooLarge, serviceUnavailable } from '../errors.js'
import { endingAsHttp } from '../stream/outcomes.js'
import { UpstreamError } from '../llm/provider.js'
import { requestIdFrom, type Logger } from '../observability/logger.js'
import { answerClientError } from './client-error.js'
import type { Cors } from './cors.js'
import { sendError, sendNoContent } from './respond.js'
import { AppResponse } from './response.js'
import type { Router } from './router.js'

export interface ListenerOptions {
  router: Router
  cors: Cors | null
  logger: Logger
  onError: (err: unknown) => void
  /** Every route that takes a body is authenticated: `Expect: 100-continue` is decided with it. */
  authenticate: AuthenticateRequest
  headersTimeoutMs: number
  bodyLimitBytes: number
  /** True once shutdown began: new requests get 503. */
  closing: () => boolean
}

/** RFC 9112 §3.2.2: a request target in absolute form (`GET http://host/healthz`) is routed by its path. */
function originForm (url: string): string {
  if (url.startsWith('/')) return url
  const authority = /^https?:\/\/[^/?#]*/i.exec(url)
  if (authority === null) return url
  const rest = url.slice(authority[0].length)
  return rest.startsWith('/') ? rest : `/${rest}`
}

/**
 * The node:http server around the router: request ids and the request log, CORS, OPTIONS, the
 * checks every request gets (shutdown, Host), errors in one JSON shape, and `Expect: 100-continue`.
 */
export function createListener (opts: ListenerOptions): http.Server {
  const { router, cors, logger, onError } = opts
  /**
   * A response closed: its watcher told (an SSE reader), then the request's log line. One
   * function for every response (`this`), no closure per request.
   */
  function responseClosed (this: AppResponse): void {
    this.closeWatcher?.responseClosed()
    const req = this.req
    // The path only: query strings can carry resume tokens.
    const url = req.url as string
    const query = url.indexOf('?')
    const path = query === -1 ? url : url.slice(0, query)
    // No status when the client left before any answer: none was sent.
    const status = this.headersSent ? this.statusCode : null
    logger.info({ req_id: this.requestId, method: req.method, path, status, ms: Math.round(performance.now() - this.startedAt) }, 'request')
  }
  /** Requests refused on their headers alone, before `100 Continue` (their body is never read). */
  const refusedEarly = new WeakMap<http.IncomingMessage, HttpError>()
  const server = http.createServer({
    // Clients trickling headers (slowloris) get 408. requestTimeout stays at Node's 300 s: set
    // this short as well, it made requests on kept-alive connections wait for seconds under load.
    headersTimeout: opts.headersTimeoutMs,
    connectionsCheckingInterval: Math.min(opts.headersTimeoutMs, 1000),
    // Node's own answer to a request without Host is an empty 400; ours is the JSON error.
    requireHostHeader: false,
    ServerResponse: AppResponse
  }, async (req, res) => {
    res.startedAt = performance.now()
    req.url = originForm(req.url as string)
    res.requestId = requestIdFrom(req.headers['x-request-id'], randomUUID)
    res.carry('X-Request-Id', res.requestId)
    // `on`, not `once`: a response closes once, and once's wrapper would stay with every open stream.
    res.on('close', responseClosed)
    cors?.decorate(req, res)
    try {
      if (opts.closing()) throw serviceUnavailable('Server is shutting down')
      const refused = refusedEarly.get(req)
      if (refused !== undefined) throw refused
      if (req.headers.host === undefined && req.httpVersion === '1.1') throw badRequest('A Host header is required (RFC 9112 §3.2)')
      if (req.method === 'OPTIONS') {
        const methods = [...router.methods(req.url), 'OPTIONS']
        cors?.preflight(req, res, methods)
        res.carry('Allow', methods.join(', '))
        return sendNoContent(res)
      }
      const { handler, params, query } = router.find(req.method as string, req.url)
      await handler({ req, res, params, query })
    } catch (err) {
      // An upstream failing outside a stream (embeddings, say) is still the upstream's fault: 502.
      if (err instanceof UpstreamError) return sendError(res, endingAsHttp(err.code, err.message, err.details))
      if (!(err instanceof HttpError)) onError(err)
      sendError(res, err)
    }
  })

  server.on('clientError', answerClientError)
  // Expect: 100-continue: decide on the headers, so a client is not asked for a body that would
  // be refused (RFC 9110 §10.1.1); a refused one gets its final status and the connection closes.
  server.on('checkContinue', (req: http.IncomingMessage, res: AppResponse) => {
    void refuseOnHeaders(req).then((refusal) => {
      if (refusal === null) res.writeContinue()
      else {
        refusedEarly.set(req, refusal)
        res.carry('Connection', 'close')
      }
      server.emit('request', req, res)
    })
  })

  /** What a request with a body is refused for, judging by its headers alone. */
  async function refuseOnHeaders (req: http.IncomingMessage): Promise<HttpError | null> {
    try {
      router.find(req.method as string, originForm(req.url as string))
      if (Number(req.headers['content-length']) > opts.bodyLimitBytes) return payloadTooLarge(opts.bodyLimitBytes)
      if (req.method === 'POST' || req.method === 'PUT') await opts.authenticate(req)
      return null
    } catch (err) {
      // A store that fails the key lookup is the request's error to answer, later, like any other.
      return err instanceof HttpError ? err : null
    }
  }

  return server
}

/** Listens on `port` and `host`; resolves with the base URL. */
export async function listen (server: http.Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    // Node's default backlog (511) resets part of a burst, such as every client reconnecting
    // after a deploy; the kernel caps this at net.core.somaxconn.
    server.listen({ port, host, backlog: 4096 }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { address, port: bound } = server.address() as AddressInfo
  return `http://${address.includes(':') ? `[${address}]` : address}:${bound}`
}
