import type { BroadcastSink } from './sinks.js'
import type { StreamRun } from './run.js'
import { newResumeToken } from './token.js'

export interface ResumableStream {
  readonly id: string
  readonly orgId: string
  readonly userId: string
  readonly agentId: string
  readonly leaseId: string | undefined
  /** Grants reading this one stream without a bearer token (for EventSource, which cannot send headers). */
  readonly resumeToken: string
  readonly run: StreamRun
  readonly sink: BroadcastSink
  /** Set once the run ended; the replay stays readable until then + TTL. */
  endedAt: number | null
  graceTimer: NodeJS.Timeout | undefined
}

/**
 * What an ended stream costs beside its frames (its run, timers, sink, state machine):
 * measured with a heap snapshot at about 2.8 KB, rounded up.
 */
const ENDED_STREAM_OVERHEAD = 3 * 1024

export interface RegistryOptions {
  ttlMs: number
  /** How long a stream with no reader keeps generating, waiting for a reconnect (0: abort at once). */
  graceMs: number
  /** Replay bytes all ended streams may hold together; beyond, the oldest ended ones go first. */
  maxRetainedBytes: number
}

/**
 * Streams that can be resumed, in this process. Ended streams expire lazily on lookup and by
 * one unref'd sweeper that looks at ended streams only, so a stream costs no timer of its own unless it is detached. Under
 * sustained load the TTL alone would let memory grow with the stream rate, so ended streams
 * also share one byte budget.
 */
export class StreamRegistry {
  readonly #streams = new Map<string, ResumableStream>()
  /** Ended streams in the order they ended, with the replay bytes each holds. */
  readonly #ended = new Map<string, number>()
  #retainedBytes = 0
  readonly #opts: RegistryOptions
  readonly #sweeper: NodeJS.Timeout

  constructor (opts: RegistryOptions) {
    this.#opts = opts
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(opts.ttlMs, 60_000))
    this.#sweeper.unref()
  }

  add (run: StreamRun, sink: BroadcastSink, userId: string): ResumableStream {
    const stream: ResumableStream = {
      id: run.id, orgId: run.orgId, userId, agentId: run.agentId, leaseId: run.leaseId, run, sink, resumeToken: newResumeToken(), endedAt: null, graceTimer: undefined
    }
    this.#streams.set(run.id, stream)
    return stream
  }

  get (id: string): ResumableStream | undefined {
    const stream = this.#streams.get(id)
    if (stream !== undefined && this.#expired(stream)) {
      this.#forget(id)
      return undefined
    }
    return stream
  }

  /** Replay bytes the ended streams hold together (bounded by `maxRetainedBytes`). */
  get retainedBytes (): number {
    return this.#retainedBytes
  }

  #forget (id: string): void {
    this.#streams.delete(id)
    this.#retainedBytes -= this.#ended.get(id) as number
    this.#ended.delete(id)
  }

  /** The last reader left a live stream: keep generating for the grace period, then give up. */
  detached (stream: ResumableStream, reason: Error): void {
    if (this.#opts.graceMs === 0) {
      stream.run.abort(reason)
      return
    }
    stream.graceTimer = setTimeout(() => stream.run.abort(reason), this.#opts.graceMs)
  }

  /** A reader is back: the stream is wanted again. */
  attached (stream: ResumableStream): void {
    stopGrace(stream)
  }

  /** A reader on another instance is following: restart the grace period, if one is running. */
  readRemotely (stream: ResumableStream): void {
    stream.graceTimer?.refresh()
  }

  ended (stream: ResumableStream): void {
    stopGrace(stream)
    stream.endedAt = Date.now()
    const bytes = stream.sink.log.bytes + ENDED_STREAM_OVERHEAD
    this.#ended.set(stream.id, bytes)
    this.#retainedBytes += bytes
    for (const oldest of this.#ended.keys()) {
      if (this.#retainedBytes <= this.#opts.maxRetainedBytes) break
      this.#forget(oldest)
    }
  }

  close (): void {
    clearInterval(this.#sweeper)
    this.#streams.clear()
    this.#ended.clear()
    this.#retainedBytes = 0
  }

  #expired (stream: ResumableStream): boolean {
    return stream.endedAt !== null && Date.now() - stream.endedAt >= this.#opts.ttlMs
  }

  /** Ended streams are kept in the order they ended, so the expired ones are all at the front. */
  #sweep (): void {
    for (const id of this.#ended.keys()) {
      if (!this.#expired(this.#streams.get(id) as ResumableStream)) break
      this.#forget(id)
    }
  }
}

function stopGrace (stream: ResumableStream): void {
  clearTimeout(stream.graceTimer)
  // Cleared, not just stopped: refresh() would re-arm a stopped timer.
  stream.graceTimer = undefined
}
