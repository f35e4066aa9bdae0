import { serviceUnavailable } from '../errors.js'
import { sendJson } from '../http/respond.js'
import type { Router } from '../http/router.js'
import type { Coordinator } from '../coord/coordinator.js'
import type { Store } from '../store/store.js'

/**
 * Liveness and readiness for orchestrators; unauthenticated, they reveal nothing about tenants.
 * While draining for shutdown every request, these included, answers 503.
 */
export function healthRoutes (router: Router, store: Store, coordinator: Coordinator): void {
  router.on('GET', '/healthz', async ({ res }) => {
    sendJson(res, 200, { status: 'ok' })
  })
  router.on('GET', '/readyz', async ({ res }) => {
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
    sendJson(res, 200, { status: 'ready', store: store.kind, coordinator: coordinator.kind })
  })
}
