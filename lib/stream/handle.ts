import type { IncomingMessage } from 'node:http'
import type { AppResponse } from '../http/response.js'
import { tokenMatches } from '../auth/constant-time.js'
import { Cancel } from '../cancel.js'
import { viaCoordinator, type Coordinator, type RemoteStream } from '../coord/coordinator.js'
import { gone } from '../errors.js'
import { eventIdPrefix } from '../protocol/event-id.js'
import { idLineOf } from '../sse/frame.js'
import { ClientGoneError } from '../sse/writer.js'
import type { WriterFactory } from '../sse/writers.js'
import { replayAfter } from './replay-log.js'

/**
 * A stream a request may read or cancel, wherever it runs: in this process (`LocalStream`, in
 * registry.ts, and once it ended `EndedStream`) or on another instance (`SharedStream`, through
 * the coordinator). Resume, follow,
 * cancel and token checks have one path each, whichever it is.
 */
export interface StreamHandle {
  readonly id: string
  readonly orgId: string
  readonly userId: string
  readonly agentId: string
  /** Constant-time check of the token that grants reading this stream without a bearer token. */
  matchesToken: (token: string) => boolean
  /** The newest event id a reader may hold: a cursor past it is the client's mistake. */
  readonly newestId: number
  /** Its terminal event was written: nothing will ever follow `newestId`. */
  readonly ended: boolean
  /** Replays what came after `cursor`, then follows until the terminal event; 410 when those events are no longer kept. */
  follow: (req: IncomingMessage, res: AppResponse, cursor: number, newWriter: WriterFactory) => Promise<void>
  /** Ends a live stream with `cancelled`; false when it had ended already. */
  cancel: () => Promise<boolean>
}

export const noLongerKept = (): Error => gone('Events after Last-Event-ID are no longer buffered')

/** What an ended stream keeps for resumes (see EndedStreams). */
export interface EndedInfo {
  id: string
  orgId: string
  userId: string
  agentId: string
  resumeToken: string
  /** Its last event's id; its newest `count` events are kept. */
  lastId: number
  count: number
  /** The kept events as the replay log keeps them, joined by LF (see `ReplayLog.end`). */
  lines: string
}

/** A stream this process ran, read back from where ended streams are kept (EndedStreams): its events replay, nothing follows. */
export class EndedStream implements StreamHandle {
  readonly id: string
  readonly orgId: string
  readonly userId: string
  readonly agentId: string
  readonly newestId: number
  readonly ended = true
  readonly #info: EndedInfo

  constructor (info: EndedInfo) {
    this.#info = info
    this.id = info.id
    this.orgId = info.orgId
    this.userId = info.userId
    this.agentId = info.agentId
    this.newestId = info.lastId
  }

  matchesToken (token: string): boolean {
    return tokenMatches(token, this.#info.resumeToken)
  }

  async follow (req: IncomingMessage, res: AppResponse, cursor: number, newWriter: WriterFactory): Promise<void> {
    const { lastId, count, lines } = this.#info
    const missed = replayAfter(idLineOf(eventIdPrefix(this.id)), lastId - count + 1, lastId, cursor, (from) => lines.split('\n').slice(from))
    if (missed === null) throw noLongerKept()
    // Written and ended at once: nothing will abort its waits.
    const writer = newWriter(req, res, new Cancel())
    writer.open()
    for (const e of missed) writer.write(e.frame)
    writer.end()
  }

  async cancel (): Promise<boolean> {
    return false
  }
}

/** A stream another instance runs: its events are read from the coordinator. */
export class SharedStream implements StreamHandle {
  readonly id: string
  readonly orgId: string
  readonly userId: string
  readonly agentId: string
  readonly #remote: RemoteStream
  readonly #coordinator: Pick<Coordinator, 'cancel'>

  constructor (remote: RemoteStream, coordinator: Pick<Coordinator, 'cancel'>) {
    this.#remote = remote
    this.#coordinator = coordinator
    this.id = remote.id
    this.orgId = remote.orgId
    this.userId = remote.userId
    this.agentId = remote.agentId
  }

  matchesToken (token: string): boolean {
    return this.#remote.matchesToken(token)
  }

  /** A live stream's newest events may still be on their way to the coordinator: any cursor may be followed. */
  get newestId (): number {
    return this.#remote.ended ? this.#remote.lastId : Number.MAX_SAFE_INTEGER
  }

  get ended (): boolean {
    return this.#remote.ended
  }

  async follow (req: IncomingMessage, res: AppResponse, cursor: number, newWriter: WriterFactory): Promise<void> {
    if (cursor < this.#remote.firstId - 1) throw noLongerKept()
    const reading = new AbortController()
    res.once('close', () => reading.abort(new ClientGoneError()))
    const writer = newWriter(req, res, reading)
    writer.open()
    try {
      for await (const event of this.#remote.follow(cursor, reading.signal)) {
        if (!writer.write(event.frame)) await writer.drained()
      }
      writer.end()
    } catch {
      // Gone, stuck, or the coordinator failed: cut the connection so the client resumes (and learns why).
      writer.end(true)
    }
  }

  async cancel (): Promise<boolean> {
    if (this.#remote.ended) return false
    await viaCoordinator(this.#coordinator.cancel(this.id))
    return true
  }
}
