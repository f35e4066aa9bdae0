import { serviceUnavailable } from '../errors.js'
import { sendJson } from '../http/respond.js'
import type { RequestContext, Router } from '../http/router.js'
import type { Coordinator } from '../coord/coordinator.js'
import type { Store } from '../store/store.js'

/**
 * Liveness and readiness for orchestrators; unauthenticated, they reveal nothing about tenants.
 * While draining for shutdown every request, these included, answers 503.
 */
export function healthRoutes (router: Router, store: Store, coordinator: Coordinator, version: string): void {
  /** The readiness checks: throws the 503 of the first dependency that does not answer. */
  async function ready (): Promise<void> {
    try {
      await store.ping()
    } catch {
      throw serviceUnavailable('Store unreachable')
    }
    try {
      await coordinator.ping()
    } catch {
      throw serviceUnavailable('Stream coordinator unreachable')
    }
  }
  const live = { status: 'ok' }
  router.on('GET', '/healthz', async ({ res }) => { sendJson(res, 200, live) })
  router.on('GET', '/readyz', async ({ res }) => {
    await ready()
    sendJson(res, 200, { status: 'ready', store: store.kind, coordinator: coordinator.kind })
  })
  // AgentMem's names, in its shape, with the same checks.
  router.on('GET', '/health/live', async ({ res }) => { sendJson(res, 200, { status: 'alive', timestamp: new Date().toISOString() }) })
  const healthy = async ({ res }: RequestContext): Promise<void> => {
    await ready()
    sendJson(res, 200, {
      status: 'healthy',
      version,
      timestamp: new Date().toISOString(),
      checks: { database: { status: 'healthy', kind: store.kind }, coordinator: { status: 'healthy', kind: coordinator.kind } }
    })
  }
  router.on('GET', '/health', healthy)
  router.on('GET', '/health/ready', healthy)
}
