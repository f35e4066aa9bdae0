import { coordinatorUnavailable } from '../errors.js'
import type { AcquireResult } from '../limits/concurrency.js'
import type { LoggedEvent } from '../sse/frame.js'

/**
 * What instances of the server share. The in-process default (`LocalCoordinator`) shares with
 * nobody; the Redis one (`RedisCoordinator`) makes limits, resume and cancel hold across every
 * instance that points at the same Redis. Both run the same contract tests.
 */
export interface Coordinator {
  readonly kind: 'local' | 'redis'
  /** Takes one stream slot for `tenant`, or says which limit refused it. Throws `CoordinatorUnavailableError`. */
  acquire: (tenant: string) => Promise<AcquireResult>
  /** Makes a live stream findable by the other instances; null when there are none to tell. */
  share: (stream: SharedStreamInfo) => StreamFeed | null
  /** A stream that another instance runs (or ran), or null. Throws `CoordinatorUnavailableError`. */
  find: (id: string) => Promise<RemoteStream | null>
  /** Asks whichever instance runs the stream to cancel it. */
  cancel: (id: string) => Promise<void>
  /** Tells the other instances that something they may cache changed (an agent, a user's memories), so they drop it. */
  cacheChanged: (kind: CacheKind, id: string) => Promise<void>
  /**
   * Takes an idempotency key for `ttlMs` with `value`, atomically: null when this call took it,
   * else the value it holds. Throws `CoordinatorUnavailableError`.
   */
  claimKey: (key: string, value: string, ttlMs: number) => Promise<string | null>
  /** Replaces the value of a key this instance took, keeping its expiry. */
  setKey: (key: string, value: string) => Promise<void>
  /** Gives a key up, so the next request with it runs again. */
  releaseKey: (key: string) => Promise<void>
  /** Hears what other instances ask of the streams this one runs, and what they changed of what instances cache; every listener hears every message. */
  onControl: (listener: ControlListener) => void
  ping: () => Promise<void>
  close: () => Promise<void>
}

/** What instances cache of the store and announce when it changes: an agent, or whether a user of an agent has memories. */
export type CacheKind = 'agent' | 'memories'

/** `id` is a stream's id, or for a `CacheKind` the cache's key: ids joined by NUL (which none may contain). */
export type ControlListener = (message: { type: 'cancel' | 'reader' | CacheKind, id: string }) => void

export interface SharedStreamInfo {
  id: string
  orgId: string
  userId: string
  agentId: string
  resumeToken: string
  /** The producer's lease, whose expiry tells readers elsewhere that its instance died. */
  leaseId?: string
  /**
   * Findable from now on, not only once its first events are written: a request with the same
   * Idempotency-Key looks the stream up before then. Without one, nobody knows its id until the
   * start event, so the stream is announced with its first events, in the same command.
   */
  findableAtOnce?: boolean
}

/** Where a running stream copies its framed events for the other instances. */
export interface StreamFeed {
  /**
   * Event `id`: its data line (JSON, an object) or, for a content event, its text as a JSON
   * string (`contentLiteral`). Readers get it framed, as every event is (`frameNumbered`).
   */
  append: (id: number, entry: string) => void
  /**
   * The turn's reply is complete and it waits on the store: what was appended in this tick waits
   * for the next append or the end, at most `maxMs`, so a short turn's events and its ending go to
   * the other instances in one call. The caller holds its readers' writes as long and longer
   * (see `SseWriter.holdForEnding`), so the shared log is not behind them.
   */
  holdForEnding: (maxMs: number) => void
  end: () => void
}

export interface RemoteStream {
  id: string
  orgId: string
  userId: string
  agentId: string
  /** Compares in constant time; only a hash of the token is kept in Redis. */
  matchesToken: (token: string) => boolean
  /** Highest event id written so far. */
  lastId: number
  ended: boolean
  /** Oldest event id still kept (events before it were trimmed). */
  firstId: number
  /**
   * Events after `cursor` until the stream ends: replayed, then followed live. Tells the
   * running instance every `heartbeatMs` that somebody still reads, so it keeps generating.
   */
  follow: (cursor: number, signal: AbortSignal) => AsyncIterable<LoggedEvent>
}

export class CoordinatorUnavailableError extends Error {
  constructor (cause: unknown) {
    super('Stream coordinator (Redis) unreachable', { cause })
    this.name = 'CoordinatorUnavailableError'
  }
}

/** A coordinator call for a request: an unreachable coordinator becomes 503, anything else stays as it is. */
export async function viaCoordinator<T> (pending: Promise<T>): Promise<T> {
  try {
    return await pending
  } catch (err) {
    if (err instanceof CoordinatorUnavailableError) throw coordinatorUnavailable()
    throw err
  }
}
