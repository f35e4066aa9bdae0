import type { IncomingMessage } from 'node:http'
import type { AppResponse } from '../http/response.js'
import { tokenMatches } from '../auth/constant-time.js'
import { Cancel } from '../cancel.js'
import type { Coordinator } from '../coord/coordinator.js'
import { eventIdPrefix } from '../protocol/event-id.js'
import type { WriterFactory } from '../sse/writers.js'
import { EndedStreams } from './ended-streams.js'
import { noLongerKept, type StreamHandle } from './handle.js'
import { CancelledError } from './outcomes.js'
import { ReplayLog, type ReplayBudget, type ReplayLimits } from './replay-log.js'
import type { StreamRun } from './run.js'
import { BroadcastSink, type SinkOwner } from './sinks.js'
import { newResumeToken } from './token.js'

/**
 * A stream this process runs (or ran, for its TTL): its run, its sink and replay log, its resume
 * token, and the grace period it keeps generating for while nobody reads.
 */
export class LocalStream implements StreamHandle, SinkOwner {
  readonly id: string
  readonly orgId: string
  readonly userId: string
  readonly agentId: string
  readonly resumeToken = newResumeToken()
  /** The run while it is live; an ended stream lets go of it (see `retire`). */
  #run: StreamRun | null
  readonly sink: BroadcastSink
  #graceTimer: NodeJS.Timeout | undefined
  readonly #graceMs: number
  readonly #onSlowReader: (run: StreamRun) => void

  constructor (run: StreamRun, userId: string, log: ReplayLog, graceMs: number, onSlowReader: (run: StreamRun) => void) {
    this.id = run.id
    this.orgId = run.orgId
    this.agentId = run.agentId
    this.userId = userId
    this.#run = run
    this.#graceMs = graceMs
    this.#onSlowReader = onSlowReader
    this.sink = new BroadcastSink(log, this)
  }

  matchesToken (token: string): boolean {
    return tokenMatches(token, this.resumeToken)
  }

  get newestId (): number {
    return this.sink.log.lastId
  }

  get ended (): boolean {
    return this.sink.log.ended
  }

  /**
   * The run ended and the registry keeps the stream as an `EndedStream` now; a request that
   * found this object before then still replays it (its log ended) and cannot cancel it.
   */
  retire (): void {
    this.stopGrace()
    this.#run = null
  }

  async follow (req: IncomingMessage, res: AppResponse, cursor: number, newWriter: WriterFactory): Promise<void> {
    // A reader of an ended stream is written to and ended at once: nothing will abort its waits.
    const writer = newWriter(req, res, this.#run ?? new Cancel())
    if (!this.sink.attach(writer, cursor)) throw noLongerKept()
    if (this.sink.log.ended) return
    // A reader is back: the stream is wanted again.
    this.stopGrace()
    writer.detachOnClose(this.sink)
  }

  async cancel (): Promise<boolean> {
    if (this.#run === null) return false
    this.#run.abort(new CancelledError())
    return true
  }

  /** Only a live stream has readers to cut: `#run` is set. */
  slowReader (): void {
    this.#onSlowReader(this.#run as StreamRun)
  }

  /** The last reader left a live stream: keep generating for the grace period, then give up. */
  readersGone (reason: Error): void {
    const run = this.#run as StreamRun
    if (this.#graceMs === 0) {
      run.abort(reason)
      return
    }
    this.#graceTimer = setTimeout(() => run.abort(reason), this.#graceMs)
  }

  /** A reader on another instance is following: restart the grace period, if one is running. */
  readRemotely (): void {
    this.#graceTimer?.refresh()
  }

  stopGrace (): void {
    clearTimeout(this.#graceTimer)
    // Cleared, not just stopped: refresh() would re-arm a stopped timer.
    this.#graceTimer = undefined
  }
}

export interface RegistryOptions {
  ttlMs: number
  /** How long a stream with no reader keeps generating, waiting for a reconnect (0: abort at once). */
  graceMs: number
  /** Replay bytes all ended streams may hold together; beyond, the oldest ended ones go first. */
  maxRetainedBytes: number
  replayLimits: ReplayLimits
  /** What every live stream's replay log may hold together. */
  liveReplay: ReplayBudget
  /** Shares each stream with the other instances (and hears their cancels and readers). */
  coordinator: Pick<Coordinator, 'share' | 'onControl'>
  /** A reader was cut for not reading (counted and logged even when the stream goes on). */
  onSlowReader: (run: StreamRun) => void
}

/**
 * The streams of this process, live and recently ended: where a run becomes a stream readers can
 * attach to (`open`), and where the POST's reader and every resume find it. An ended stream is
 * kept as a record (EndedStreams), off the heap, until its TTL or the byte budget lets it go; it
 * expires lazily on lookup and by one unref'd sweeper, so a stream costs no timer of its own
 * unless it is detached.
 */
export class StreamRegistry {
  /**
   * Live streams by id: the Map holds each one's place in `#liveSlots`, a number, not the stream
   * itself, and a place is used again once freed. A Map's hash table is rebuilt as entries come
   * and go, and a table left behind in the old generation holds what it pointed to until the
   * next full GC (see SlotList): a live stream there took its whole turn along.
   */
  readonly #live = new Map<string, number>()
  readonly #liveSlots: Array<LocalStream | undefined> = []
  readonly #freeSlots: number[] = []
  readonly #ended: EndedStreams
  readonly #opts: RegistryOptions
  readonly #sweeper: NodeJS.Timeout

  constructor (opts: RegistryOptions) {
    this.#opts = opts
    this.#ended = new EndedStreams(opts.maxRetainedBytes, opts.ttlMs)
    this.#sweeper = setInterval(() => this.#ended.expire(Date.now()), Math.min(opts.ttlMs, 60_000))
    this.#sweeper.unref()
    opts.coordinator.onControl(({ type, id }) => {
      // The other messages are cache announcements (agents, memories): not this registry's.
      if (type !== 'cancel' && type !== 'reader') return
      // Only a live stream can be cancelled or waits for a reader.
      const stream = this.#liveStream(id)
      if (stream === undefined) return // another instance's, or ended
      if (type === 'cancel') void stream.cancel()
      else stream.readRemotely()
    })
  }

  /**
   * Makes `run` a stream with a replay log, findable here and (with a shared coordinator) on every
   * instance: at once when `findableAtOnce` (see `SharedStreamInfo`), else with its first events.
   */
  open (run: StreamRun, userId: string, findableAtOnce: boolean): LocalStream {
    const { replayLimits, liveReplay, graceMs, onSlowReader, coordinator } = this.#opts
    const stream = new LocalStream(run, userId, new ReplayLog(replayLimits, eventIdPrefix(run.id), liveReplay), graceMs, onSlowReader)
    const slot = this.#freeSlots.pop() ?? this.#liveSlots.length
    this.#liveSlots[slot] = stream
    this.#live.set(run.id, slot)
    const { id, orgId, agentId, resumeToken } = stream
    stream.sink.feed = coordinator.share({ id, orgId, userId, agentId, resumeToken, leaseId: run.leaseId, findableAtOnce })
    return stream
  }

  get (id: string): StreamHandle | undefined {
    return this.#liveStream(id) ?? this.#ended.get(id, Date.now())
  }

  #liveStream (id: string): LocalStream | undefined {
    const slot = this.#live.get(id)
    return slot === undefined ? undefined : this.#liveSlots[slot]
  }

  /** What the ended streams hold together (bounded by `maxRetainedBytes`). */
  get retainedBytes (): number {
    return this.#ended.bytes
  }

  /** The run `id` ended (its sink ended first, so its log holds all it ever will): its stream is kept for resumes only. */
  ended (id: string): void {
    const slot = this.#live.get(id)
    if (slot === undefined) return // it ended before it became a stream
    const stream = this.#liveSlots[slot] as LocalStream
    this.#live.delete(id)
    this.#liveSlots[slot] = undefined
    this.#freeSlots.push(slot)
    stream.retire()
    const log = stream.sink.log
    const { orgId, userId, agentId, resumeToken } = stream
    this.#ended.add({ id, orgId, userId, agentId, resumeToken, lastId: log.lastId, count: log.count, lines: log.endedLines }, Date.now())
  }

  close (): void {
    clearInterval(this.#sweeper)
    this.#live.clear()
    this.#liveSlots.length = 0
    this.#freeSlots.length = 0
    this.#ended.clear()
  }
}
