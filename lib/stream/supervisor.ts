import { setTimeout as sleep } from 'node:timers/promises'
import { ServerShutdownError, type StreamOutcome } from './outcomes.js'
import { StreamRun, type RunObserver, type StreamTimeouts } from './run.js'
import { SlotList } from '../slot-list.js'
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
  /** For the slow-reader log line. */
  drainTimeoutMs: number
  /** Hears the cause of every stream that ended with internal_error. */
  onError: (err: unknown) => void
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
  readonly #runs = new SlotList<StreamRun>()
  /** One for every run: what runs report goes to the metrics. */
  readonly #observer: RunObserver
  #drained: (() => void) | undefined

  constructor (opts: SupervisorOptions) {
    this.#opts = opts
    const { metrics } = opts
    this.#observer = {
      started: () => metrics.streamsStarted.inc(),
      firstToken: (seconds) => metrics.timeToFirstToken.observe(seconds),
      firstReasoning: (seconds) => metrics.timeToFirstReasoning.observe(seconds),
      toolCall: (status) => metrics.toolCalls.inc({ outcome: status }),
      memories: (ops) => { for (const { op } of ops) metrics.memoriesWritten.inc({ op }) },
      internalError: opts.onError
    }
  }

  /** A reader of `run` was cut for not reading: counted and logged, even when the stream goes on. */
  readonly slowReaderCut = (run: StreamRun): void => {
    this.#opts.metrics.slowReadersCut.inc()
    this.#opts.logger.warn({ req_id: run.requestId, org: run.orgId, stream_id: run.id, drain_timeout_ms: this.#opts.drainTimeoutMs }, 'slow reader cut')
  }

  get runs (): Iterable<StreamRun> {
    return this.#runs
  }

  /** Reserves a stream slot for the tenant, or throws 429 (503 when the coordinator is unreachable). */
  async start (orgId: string, agentId: string, requestId: string): Promise<StreamRun> {
    const { coordinator, metrics, timeouts } = this.#opts
    const acquired = await viaCoordinator(coordinator.acquire(orgId))
    if (!acquired.ok) {
      metrics.limitRejections.inc({ scope: acquired.scope })
      throw quotaExceeded(acquired.scope, acquired.limit, 1)
    }
    const run = new StreamRun({ orgId, agentId, requestId, lease: acquired.lease, timeouts, onEnd: this.#ended, observer: this.#observer })
    this.#runs.add(run)
    metrics.activeStreams.inc({ tenant: orgId })
    return run
  }

  readonly #ended = (run: StreamRun, outcome: StreamOutcome): void => {
    const { registry, metrics, logger, onStreamEnd } = this.#opts
    this.#runs.delete(run)
    registry.ended(run.id)
    const ms = performance.now() - run.startedAt
    const { events, bytes } = run.sent
    metrics.streamEnded(run.orgId, outcome, ms / 1000)
    metrics.eventsSent.inc(events)
    metrics.bytesSent.inc(bytes)
    logger.info({ req_id: run.requestId, org: run.orgId, agent: run.agentId, stream_id: run.id, outcome, ms: Math.round(ms), events, tokens: run.usage?.completion_tokens ?? null }, 'stream end')
    // An embedding app's hook that throws must not skip the drain below (shutdown would wait forever).
    try {
      onStreamEnd?.({ id: run.id, orgId: run.orgId, outcome })
    } catch (err) {
      this.#opts.onError(err)
    }
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
