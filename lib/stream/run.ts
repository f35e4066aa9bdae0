import type { Lease } from '../limits/concurrency.js'
import type { TokenUsage } from '../llm/provider.js'
import { newStreamId } from './token.js'
import { Cancel } from '../cancel.js'
import { deadlines, type DeadlineOwner } from '../timers/deadlines.js'
import { StreamStateMachine } from '../protocol/state-machine.js'
import { StreamTimeoutError, type StreamOutcome } from './outcomes.js'
import type { ChunkSink } from './sinks.js'
import type { Slotted } from '../slot-list.js'

/** Shared: one Error (and its stack) per released stream would be waste on the hot path. */
const RELEASED = new Error('stream released')

export interface StreamTimeouts {
  firstTokenMs: number
  idleMs: number
  maxDurationMs: number
}

/** What a run reports as it goes (metrics); every hook optional. */
export interface RunObserver {
  /** The turn's first event went out: for a stream, its 200 (a slot taken for a turn refused before it is not counted). */
  started?: () => void
  /** The first content or tool call (what a user waits for). */
  firstToken?: (seconds: number) => void
  /** The first reasoning delta of a thinking model, which may come long before the first token. */
  firstReasoning?: (seconds: number) => void
  toolCall?: (status: string) => void
  memories?: (ops: Array<{ op: string }>) => void
  /** A stream ended with internal_error: the cause, for the logs (the client sees a generic message). */
  internalError?: (err: unknown) => void
}

export interface StreamRunOptions {
  orgId: string
  /** For logs: the agent and the request that started the run. */
  agentId: string
  requestId: string
  observer?: RunObserver
  lease: Lease
  timeouts: StreamTimeouts
  /** Called exactly once, when every resource of the run is released. */
  onEnd: (run: StreamRun, outcome: StreamOutcome) => void
}

/**
 * One stream's lifetime: its cancellation (whose signal reaches the upstream request), its deadline (first
 * token, idle and total bounds), its concurrency slot and its state machine. Whatever ends it
 * (done, error, timeout, disconnect, shutdown), `#release` runs once and frees all of them.
 */
export class StreamRun implements DeadlineOwner, Slotted {
  readonly id = newStreamId()
  readonly orgId: string
  readonly agentId: string
  readonly requestId: string
  readonly startedAt = performance.now()
  readonly state = new StreamStateMachine()
  readonly observer: RunObserver
  /** Aborted by whatever ends the stream early; its AbortSignal is made only for what needs one. */
  readonly cancel = new Cancel()
  // The options' three lasting fields, not the options object (80 bytes a stream).
  readonly #lease: Lease
  readonly #timeouts: StreamTimeouts
  readonly #onEnd: StreamRunOptions['onEnd']
  /** One deadline for all three bounds, set for the nearest; activity only records the time. */
  readonly #deadline = deadlines.for(this)
  /** When the last token or event came; -1 until the first. */
  #lastActivity = -1
  #sawToken = false
  #sawReasoning = false
  #sink: ChunkSink | undefined
  #usage: TokenUsage | null = null
  #outcome: StreamOutcome | undefined
  /** Its place in the supervisor's list of runs. */
  listSlot = -1

  constructor (opts: StreamRunOptions) {
    this.#lease = opts.lease
    this.#timeouts = opts.timeouts
    this.#onEnd = opts.onEnd
    this.orgId = opts.orgId
    this.agentId = opts.agentId
    this.requestId = opts.requestId
    this.observer = opts.observer ?? {}
    // The first-token clock starts now: it also bounds opening the upstream.
    this.#arm(this.#nextDeadline())
  }

  #arm (deadline: number): void {
    deadlines.set(this.#deadline, deadline)
  }

  /** The nearest bound: max duration, and first token or idle depending on whether anything came yet. */
  #nextDeadline (): number {
    const { firstTokenMs, idleMs, maxDurationMs } = this.#timeouts
    const quiet = this.#lastActivity < 0 ? this.startedAt + firstTokenMs : this.#lastActivity + idleMs
    return Math.min(quiet, this.startedAt + maxDurationMs)
  }

  /**
   * Checks the bounds when the deadline is reached: activity since it was set moved the idle bound
   * later, so it is set again for that instead of aborting. A token costs a clock read, not a timer update.
   */
  deadlineReached (): void {
    const now = performance.now()
    const deadline = this.#nextDeadline()
    if (now < deadline) {
      this.#arm(deadline)
      return
    }
    const { firstTokenMs, idleMs, maxDurationMs } = this.#timeouts
    if (now - this.startedAt >= maxDurationMs) this.abort(new StreamTimeoutError('max_duration', maxDurationMs))
    else if (this.#lastActivity < 0) this.abort(new StreamTimeoutError('first_token', firstTokenMs))
    else this.abort(new StreamTimeoutError('idle', idleMs))
  }

  /** The slot's lease id, where the coordinator names leases. */
  get leaseId (): string | undefined {
    return this.#lease.id
  }

  /** The cancellation's AbortSignal (made on first read). */
  get signal (): AbortSignal {
    return this.cancel.signal
  }

  get bufferedBytes (): number {
    return this.#sink?.bufferedBytes ?? 0
  }

  /** Token usage the model reported, summed over tool rounds (null when it reported none). */
  get usage (): TokenUsage | null {
    return this.#usage
  }

  get sent (): { events: number, bytes: number } {
    return this.#sink?.sent ?? { events: 0, bytes: 0 }
  }

  abort (reason: Error): void {
    this.cancel.abort(reason)
  }

  /** Where the run's chunks go (for its buffered and sent counts). */
  use (sink: ChunkSink): void {
    this.#sink = sink
  }

  /** Content or a tool call: activity, and the first one is the time to first token. */
  token (): void {
    this.activity()
    if (this.#sawToken) return
    this.#sawToken = true
    this.observer.firstToken?.((this.#lastActivity - this.startedAt) / 1000)
  }

  /** A reasoning delta: activity (thinking keeps the bounds at bay), and the first one is timed apart. */
  reasoning (): void {
    this.activity()
    if (this.#sawReasoning) return
    this.#sawReasoning = true
    this.observer.firstReasoning?.((this.#lastActivity - this.startedAt) / 1000)
  }

  /** Anything from upstream or the turn's own work: moves the idle bound later. */
  activity (): void {
    const now = performance.now()
    const first = this.#lastActivity < 0
    this.#lastActivity = now
    if (!first) return
    // The idle bound may be nearer than the first-token one the deadline is set for: then it is
    // moved. A later one (the default: idle 60 s, first token 30 s) waits for the deadline, which
    // is set again when reached, so a short turn sets it once.
    const deadline = this.#nextDeadline()
    if (deadline < this.#deadline.at) this.#arm(deadline)
  }

  /** Frees slot, timers and upstream request. Safe to call from every exit path; acts once. */
  release (outcome: StreamOutcome, usage: TokenUsage | null = null): void {
    if (this.#outcome !== undefined) return
    this.#outcome = outcome
    this.#usage = usage
    deadlines.clear(this.#deadline)
    this.#lease.release()
    // On every path but a clean finish this cuts the upstream request. After `done` the upstream
    // has ended already, and dispatching an abort nobody needs is the dearest part of a release.
    if (outcome !== 'done') this.cancel.abort(RELEASED)
    this.#onEnd(this, outcome)
  }
}
