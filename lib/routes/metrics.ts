import { tokenMatches } from '../auth/constant-time.js'
import { isLoopback } from '../config.js'
import { forbidden, type HttpError, unauthorized } from '../errors.js'
import type { Router } from '../http/router.js'
import type { Metrics } from '../observability/metrics.js'

export interface MetricsContext {
  metrics: Metrics
  /** With a token, scrapers send `Authorization: Bearer <token>`. */
  token?: string
  /** Local dev mode: without a token, loopback peers may read. */
  devMode: boolean
}

/**
 * Who may scrape (null means allowed): the token holder; without a token, nobody outside local
 * dev mode, since behind a reverse proxy on the same host every client looks like loopback, and
 * metrics name tenants. In dev mode without a token, loopback peers.
 */
export function metricsAccess (remoteAddress: string | undefined, authorization: string | undefined, token: string | undefined, devMode: boolean): HttpError | null {
  if (token !== undefined) return tokenMatches(authorization ?? '', `Bearer ${token}`) ? null : unauthorized('Metrics need METRICS_TOKEN')
  if (!devMode) return forbidden('Metrics need METRICS_TOKEN to be set (outside local dev mode)')
  const peer = String(remoteAddress).replace(/^::ffff:/, '')
  return isLoopback(peer) ? null : forbidden('Metrics are served to loopback peers only unless METRICS_TOKEN is set')
}

export function metricsRoutes (router: Router, ctx: MetricsContext): void {
  router.on('GET', '/metrics', async ({ req, res }) => {
    const denied = metricsAccess(req.socket.remoteAddress, req.headers.authorization, ctx.token, ctx.devMode)
    if (denied !== null) throw denied
    const body = await ctx.metrics.registry.metrics()
    res.writeHead(200, { 'Content-Type': ctx.metrics.registry.contentType })
    res.end(body)
  })
}
