import { contentLiteral, serializeChunk, type StreamChunk, type ToolCallInfo } from '../protocol/chunk.js'
import type { StreamFeed } from '../coord/coordinator.js'
import { ReplayLog } from './replay-log.js'
import { ClientGoneError, ENDING_HOLD_MS, SlowConsumerError, type SseWriter } from '../sse/writer.js'
import { TextBuffer } from './text-buffer.js'

/**
 * Where a run's chunks go. `content` and `event` may return a promise: the run awaits it before
 * pulling the next token, which is how a slow reader slows the upstream instead of growing a buffer.
 */
export interface ChunkSink {
  readonly bufferedBytes: number
  /** Events and bytes produced so far (before compression). */
  readonly sent: { events: number, bytes: number }
  start: (chunk: StreamChunk) => void
  content: (text: string) => Promise<void> | undefined
  /** Any other live chunk: tool_call, memory_update. */
  event: (chunk: StreamChunk) => Promise<void> | undefined
  finish: (chunk: StreamChunk) => void
  end: (destroy: boolean) => void
  /** The reply is complete and the turn now waits on the store: what was just written may wait to leave with the ending. */
  holdForEnding: () => void
}

/** Shared by every sink without readers: one empty array, not one per stream kept for resumes. */
const NO_READERS: readonly SseWriter[] = []

/** What a broadcast sink tells the stream it serves. */
export interface SinkOwner {
  /** The last reader left while the stream is live. */
  readersGone: (reason: Error) => void
  /** A reader was cut for not reading, whether or not the stream goes on. */
  slowReader: () => void
}

/**
 * The SSE side of a run: every chunk is framed once into the replay log and written to every
 * attached reader (the original POST, and any resume connections). A reader that closes or
 * cannot keep up is detached; its owner hears when the last one goes while the stream is live.
 */
export class BroadcastSink implements ChunkSink {
  readonly log: ReplayLog
  /** Copies every event to the other instances (set once, before the first event), when there are any. */
  feed: StreamFeed | null = null
  /**
   * Replaced, not changed, when a reader comes or goes (rare): most streams have one reader for
   * life, and an array of one is some 56 bytes where a Set is some 150 (made by `concat`, which
   * sizes it exactly: a spread or a push reserves 17 slots, 184 bytes).
   */
  #readers = NO_READERS
  /** An object rather than two callbacks: no closures per stream. */
  readonly #owner: SinkOwner

  constructor (log: ReplayLog, owner: SinkOwner) {
    this.log = log
    this.#owner = owner
  }

  get sent (): { events: number, bytes: number } {
    return { events: this.log.lastId, bytes: this.log.totalBytes }
  }

  get bufferedBytes (): number {
    let max = 0
    for (const r of this.#readers) max = Math.max(max, r.bufferedBytes)
    return max
  }

  /** Opens `writer`, replays what came after `cursor`, then follows live. False when the cursor is too old. */
  attach (writer: SseWriter, cursor: number): boolean {
    const missed = this.log.after(cursor)
    if (missed === null) return false
    writer.open()
    for (const e of missed) writer.write(e.frame)
    if (this.log.ended) writer.end()
    else this.#readers = this.#readers.concat(writer)
    return true
  }

  /** The reader's connection closed, or it fell too far behind. */
  detach (writer: SseWriter, reason: Error): void {
    if (!this.#readers.includes(writer)) return
    this.#readers = this.#readers.filter((r) => r !== writer)
    writer.end(!(reason instanceof ClientGoneError))
    if (reason instanceof SlowConsumerError) this.#owner.slowReader()
    if (this.#readers.length === 0 && !this.log.ended) this.#owner.readersGone(reason)
  }

  /** Sends `frame`, the log's newest event, to every reader. */
  #broadcast (frame: string): Promise<void> | undefined {
    let waits: Array<Promise<void>> | undefined
    for (const reader of this.#readers) {
      if (reader.write(frame)) continue
      // One stuck reader is cut loose; the others, and the upstream, go on.
      const wait = reader.drained().catch((err: Error) => this.detach(reader, err))
      ;(waits ??= []).push(wait)
    }
    return waits === undefined ? undefined : Promise.all(waits).then(() => {})
  }

  start (chunk: StreamChunk): void {
    void this.event(chunk)
  }

  content (text: string): Promise<void> | undefined {
    const literal = contentLiteral(text)
    const frame = this.log.appendContent(literal)
    this.feed?.append(this.log.lastId, literal)
    return this.#broadcast(frame)
  }

  event (chunk: StreamChunk): Promise<void> | undefined {
    const line = serializeChunk(chunk)
    const frame = this.log.append(line)
    this.feed?.append(this.log.lastId, line)
    return this.#broadcast(frame)
  }

  /** The terminal event needs no wait: end() follows and flushes it. */
  finish (chunk: StreamChunk): void {
    void this.event(chunk)
    this.log.end()
  }

  holdForEnding (): void {
    for (const reader of this.#readers) reader.holdForEnding()
    // Half the readers' bound, so the other instances are not behind the readers here.
    this.feed?.holdForEnding(ENDING_HOLD_MS / 2)
  }

  end (destroy: boolean): void {
    this.log.end()
    this.feed?.end()
    // An ended stream is kept for resumes for minutes: it lets go of what only a live one needs.
    this.feed = null
    for (const reader of this.#readers) reader.end(destroy)
    this.#readers = NO_READERS
  }
}

/** For the non-streaming endpoint: the same run, gathered into one reply. */
export class CollectingSink implements ChunkSink {
  readonly bufferedBytes = 0
  readonly sent = { events: 0, bytes: 0 }
  readonly #reply = new TextBuffer()
  content = (text: string): undefined => {
    this.#reply.add(text)
  }

  get text (): string {
    return this.#reply.toString()
  }

  terminal: StreamChunk | null = null
  /** Tool calls in their final state (completed or failed). */
  readonly toolCalls: ToolCallInfo[] = []
  memoriesCount = 0

  start (): void {}

  event (chunk: StreamChunk): undefined {
    if (chunk.tool_call !== null && chunk.tool_call.status !== 'running') this.toolCalls.push(chunk.tool_call)
    if (chunk.memories_count !== null) this.memoriesCount = chunk.memories_count
  }

  finish (chunk: StreamChunk): void {
    this.terminal = chunk
  }

  end (): void {}
  holdForEnding (): void {}
}
