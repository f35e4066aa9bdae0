import { setTimeout as sleep } from 'node:timers/promises'
import { ServerShutdownError, type StreamOutcome } from './outcomes.js'
import { StreamRun, type RunObserver, type StreamTimeouts } from './run.js'
import { viaCoordinator, type Coordinator } from '../coord/coordinator.js'
import { quotaExceeded } from '../errors.js'
import type { Logger } from '../observability/logger.js'
import type { Metrics } from '../observability/metrics.js'
import type { StreamRegistry } from './registry.js'

export interface SupervisorOptions {
  coordinator: Coordinator
  registry: StreamRegistry
  metrics: Metrics
  logger: Logger
  timeouts: StreamTimeouts
  observer: RunObserver
  /** Called once per stream after all its resources were released. */
  onStreamEnd?: (info: { id: string, orgId: string, outcome: StreamOutcome }) => void
}

/**
 * Every run of this instance, from its slot to its end: takes the slot (429 past a limit), hears
 * each run end exactly once (metrics, the end log line, the resume registry), and on shutdown
 * gives running streams a grace period before ending them with server_shutdown.
 */
export class StreamSupervisor {
  readonly #opts: SupervisorOptions
  readonly #runs = new Set<StreamRun>()
  #drained: (() => void) | undefined

  constructor (opts: SupervisorOptions) {
    this.#opts = opts
  }

  get runs (): ReadonlySet<StreamRun> {
    return this.#runs
  }

  /** Reserves a stream slot for the tenant, or throws 429 (503 when the coordinator is unreachable). */
  async start (orgId: string, agentId: string, requestId: string): Promise<StreamRun> {
    const { coordinator, metrics, timeouts, observer } = this.#opts
    const acquired = await viaCoordinator(coordinator.acquire(orgId))
    if (!acquired.ok) {
      metrics.limitRejections.inc({ scope: acquired.scope })
      throw quotaExceeded(acquired.scope, acquired.limit, 1)
    }
    const run = new StreamRun({ orgId, agentId, requestId, lease: acquired.lease, timeouts, onEnd: this.#ended, observer })
    this.#runs.add(run)
    metrics.activeStreams.inc({ tenant: orgId })
    return run
  }

  readonly #ended = (run: StreamRun, outcome: StreamOutcome): void => {
    const { registry, metrics, logger, onStreamEnd } = this.#opts
    this.#runs.delete(run)
    const resumable = registry.get(run.id)
    if (resumable !== undefined) registry.ended(resumable)
    const ms = performance.now() - run.startedAt
    const { events, bytes } = run.sent
    metrics.streamEnded(run.orgId, outcome, ms / 1000)
    metrics.eventsSent.inc(events)
    metrics.bytesSent.inc(bytes)
    logger.info({ req_id: run.requestId, org: run.orgId, agent: run.agentId, stream_id: run.id, outcome, ms: Math.round(ms), events, tokens: run.usage?.completion_tokens ?? null }, 'stream end')
    onStreamEnd?.({ id: run.id, orgId: run.orgId, outcome })
    if (this.#runs.size === 0) this.#drained?.()
  }

  /** Running streams get `graceMs` to finish; whatever is left then ends with server_shutdown. */
  async drain (graceMs: number): Promise<void> {
    if (this.#runs.size === 0) return
    const allEnded = new Promise<void>((resolve) => { this.#drained = resolve })
    const timer = new AbortController()
    await Promise.race([allEnded, sleep(graceMs, undefined, { signal: timer.signal }).catch(() => {})])
    timer.abort()
    for (const run of this.#runs) run.abort(new ServerShutdownError())
    await allEnded
  }
}
