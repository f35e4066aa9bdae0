import { createHash, randomUUID, timingSafeEqual } from 'node:crypto'
import { Redis, type Result } from 'ioredis'
import { BatchedRedis } from './batched-redis.js'
import { leaseOnce, type AcquireResult, type ConcurrencyLimits, type Lease, type LeaseOwner } from '../limits/concurrency.js'
import { frameNumbered, idLineOf, type LoggedEvent } from '../sse/frame.js'
import { isKeptEntry, keptLineOf } from '../protocol/chunk.js'
import { deadlines, type DeadlineOwner } from '../timers/deadlines.js'
import { eventIdPrefix } from '../protocol/event-id.js'
import {
  CoordinatorUnavailableError, type CacheKind, type ControlListener, type Coordinator, type RemoteStream, type SharedStreamInfo, type StreamFeed
} from './coordinator.js'

// Redis' own clock decides when a lease expires, so instances with skewed clocks agree.
const NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"

/**
 * KEYS: global set, tenant set. ARGV: lease id, per-tenant max, total max, ttl ms. 0 ok, 1 tenant
 * full, 2 global full. Expired leases (their instance died) are swept only from a set that looks
 * full: below the limit they change nothing, and the sweep is most of the script's work.
 */
const ACQUIRE = `${NOW}
local function full (key, max)
  if redis.call('ZCARD', key) < max then return false end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  return redis.call('ZCARD', key) >= max
end
if full(KEYS[1], tonumber(ARGV[3])) then return 2 end
if full(KEYS[2], tonumber(ARGV[2])) then return 1 end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now + tonumber(ARGV[4]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[4])
end
return 0`

/**
 * KEYS: global set, tenant set. ARGV: lease id, ttl ms. Writes the lease again even when it is
 * missing: a Redis that restarted empty has lost every running stream's slot, and the limits
 * hold again within one renewal. (A released lease is no longer renewed, so none comes back.)
 */
const RENEW = `${NOW}
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 0`

/**
 * KEYS: the stream's events, the global lease set. ARGV: the producer's lease id, the terminal
 * frame before and after its number, resume ttl. When the stream has not ended and its
 * producer's lease expired (the instance died), appends one terminal event and the end marker,
 * atomically, so every reader and every later resume ends the same way. Returns -1 when the
 * events are gone, 0 when nothing was to be done, else the terminal event's number.
 */
const LOST = `${NOW}
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] ~= nil and last[1][1] == '1-0' then return 0 end
local expiry = redis.call('ZSCORE', KEYS[2], ARGV[1])
if expiry and tonumber(expiry) > now then return 0 end
local seq = 1
if last[1] ~= nil then seq = tonumber(string.sub(last[1][1], 3)) + 1 end
redis.call('XADD', KEYS[1], '0-' .. seq, 'f', ARGV[2] .. seq .. ARGV[3])
redis.call('XADD', KEYS[1], '1-0', 'end', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return seq`

/** KEYS: global set, tenant set. ARGV: lease ids. Frees the slots in both sets: one command, not two. */
const RELEASE = `redis.call('ZREM', KEYS[1], unpack(ARGV))
redis.call('ZREM', KEYS[2], unpack(ARGV))
return 0`

/** Lease ids per release call at most: well inside what Lua's unpack can pass to a command. */
const RELEASE_BATCH = 1000

/** KEYS: the stream's meta. ARGV: its lifetime ms, then its fields and values. Written and bounded in one command. */
const OPEN = `redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0`

/**
 * One call per stream per tick: the tick's frames as one entry, numbered by its last event; the
 * events' key gets its lifetime with the first events (and the meta, unless it was written at
 * once), and the end marker goes with the last (a short turn's only call sets the resume ttl alone).
 * KEYS: the stream's events, its meta. ARGV: [1] the lifetime ms when this call writes the first
 * events, else ''; [2] the resume ttl ms when it ends the stream, else ''; [3] the trim bound
 * (MINID); [4] the entry's id; [5] the frames, joined ('' for none); [6...] the meta's fields and
 * values, when this call writes it.
 */
const FLUSH = `local ending = ARGV[2] ~= ''
if #ARGV > 5 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 6))
  if not ending then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
end
if ARGV[5] ~= '' then redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[3], ARGV[4], 'l', ARGV[5]) end
if ARGV[1] ~= '' and not ending then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if ending then
  redis.call('XADD', KEYS[1], '1-0', 'end', '1')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 0`

declare module 'ioredis' {
  interface RedisCommander<Context> {
    amAcquire: (global: string, tenant: string, lease: string, maxPerTenant: number, maxTotal: number, ttlMs: number) => Result<number, Context>
    amRenew: (global: string, tenant: string, lease: string, ttlMs: number) => Result<number, Context>
    amLost: (events: string, global: string, lease: string, before: string, after: string, resumeTtlMs: number) => Result<number, Context>
    amRelease: (global: string, tenant: string, ...leases: string[]) => Result<number, Context>
    amOpen: (meta: string, lifetimeMs: number, ...fields: string[]) => Result<number, Context>
    amFlush: (events: string, meta: string, lifetimeMs: number | '', resumeTtlMs: number | '', minId: string, entryId: string, frames: string, ...metaFields: string[]) => Result<number, Context>
  }
}

export interface RedisCoordinatorOptions extends ConcurrencyLimits {
  url: string
  /** Namespace for every key and channel, so several deployments can share one Redis. */
  keyPrefix: string
  /** A slot whose instance stopped renewing it comes back after this long. */
  leaseTtlMs: number
  /** How long a finished stream stays resumable. */
  resumeTtlMs: number
  /** Upper bound of a stream's life: its keys expire after this plus `resumeTtlMs` even if nobody ends it. */
  maxDurationMs: number
  maxEvents: number
  /** How often a reader on another instance tells the running one that it is still there. */
  heartbeatMs: number
  /** How long a follower's XREAD blocks before it checks that the stream and its producer still exist. */
  followBlockMs: number
  /**
   * The terminal event a reader gets when the stream's producer died (`producer_lost`) or its
   * events vanished from Redis (`stream_lost`), framed with the stream's event id `seq`.
   */
  lostFrame: (streamId: string, seq: number, code: 'producer_lost' | 'stream_lost') => string
  onError: (err: unknown) => void
  /** Hears Redis go away (once per outage, with the first failure) and come back. */
  onOutage?: (state: 'down' | 'up', err?: unknown) => void
}

const NOTHING: string[] = []

/** Entry `0-n` holds the events of one tick, the last of them event n; the end marker `1-0` sorts after every event. */
const END_ID = '1-0'
const seq = (entryId: string): number => Number(entryId.slice(2))
const hashToken = (token: string): Buffer => createHash('sha256').update(token).digest()

type Entry = [id: string, fields: string[]]

/** The number of an entry's first event: the entry is numbered by its last. */
const firstOf = (entryId: string, events: string[]): number => seq(entryId) - events.length + 1

/** The field of a tick's events, as `StreamFeed.append` took them, one per line (JSON holds no raw line break). */
const LINES = 'l'

/**
 * The events of an entry, in order: in a `l` field, one tick's events as their data lines (a
 * content event as its text's JSON string, some 20 times smaller than its frame); in any other,
 * whole frames (a lost producer's terminal event; earlier versions' events). A frame ends with
 * the only blank line in it: every line the framer writes has a field name or a colon.
 */
function eventsOf (fields: string[]): string[] {
  const events: string[] = []
  for (let i = 1; i < fields.length; i += 2) {
    const value = fields[i] as string
    if (fields[i - 1] === LINES) {
      for (const line of value.split('\n')) events.push(line)
      continue
    }
    for (let from = 0, end = value.indexOf('\n\n'); end !== -1; from = end + 2, end = value.indexOf('\n\n', from)) events.push(value.slice(from, end + 2))
  }
  return events
}

/** Event `n` of `eventsOf` framed, with the id line `idLine`: a data line gets its frame, a frame stays as it is. */
function frameOf (idLine: string, n: number, event: string): string {
  return isKeptEntry(event) ? frameNumbered(idLine, n, keptLineOf(event)) : event
}

/** The first letter of a control message says what it is. */
const CONTROL_TYPES = { c: 'cancel', r: 'reader', a: 'agent', m: 'memories' } as const
/** The same table the other way round: the letter a cache announcement is sent with. */
const CONTROL_LETTERS = Object.fromEntries(Object.entries(CONTROL_TYPES).map(([letter, type]) => [type, letter])) as Record<CacheKind, string>

/**
 * Limits, resume and cancel shared by every instance on one Redis. Leases are members of sorted
 * sets scored by expiry (taken atomically by a script, renewed by one timer for all of this
 * instance's streams); a stream's events go to a Redis Stream that any instance can replay and
 * follow; cancel, "still reading" and cache announcements travel over pub/sub.
 */
export class RedisCoordinator implements Coordinator, LeaseOwner {
  readonly kind = 'redis'
  readonly #opts: RedisCoordinatorOptions
  readonly #redis: Redis
  readonly #subscriber: Redis
  readonly #leases = new Map<string, string>()
  /** Leases freed by the callback now running and its promises, by tenant, not yet released in Redis. */
  #freed = new Map<string, string[]>()
  readonly #renewer: NodeJS.Timeout
  readonly #channel: string
  readonly #listeners: ControlListener[] = []
  #down = false

  private constructor (opts: RedisCoordinatorOptions) {
    this.#opts = opts
    // Fail fast while Redis is away: a refused stream (503) beats one that waits on a queue.
    // BatchedRedis sends every command of one tick (all streams' events) in one write. No MULTI
    // anywhere: it would bypass that queue and overtake commands issued before it.
    this.#redis = new BatchedRedis(opts.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 2000, lazyConnect: true })
    this.#redis.on('error', () => {}) // reported where a command fails; reconnecting is automatic
    this.#redis.defineCommand('amAcquire', { numberOfKeys: 2, lua: ACQUIRE })
    this.#redis.defineCommand('amRenew', { numberOfKeys: 2, lua: RENEW })
    this.#redis.defineCommand('amLost', { numberOfKeys: 2, lua: LOST })
    this.#redis.defineCommand('amRelease', { numberOfKeys: 2, lua: RELEASE })
    this.#redis.defineCommand('amOpen', { numberOfKeys: 1, lua: OPEN })
    this.#redis.defineCommand('amFlush', { numberOfKeys: 2, lua: FLUSH })
    // The subscription waits out an outage (no retry limit) and is renewed on every reconnect.
    this.#subscriber = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: null })
    this.#subscriber.on('error', () => {})
    this.#channel = `${opts.keyPrefix}control`
    this.#subscriber.on('message', (_channel: string, message: string) => {
      const type = CONTROL_TYPES[message[0] as keyof typeof CONTROL_TYPES]
      // Another version's message: nothing this one understands.
      if (type === undefined || message[1] !== ':') return
      for (const listener of this.#listeners) listener({ type, id: message.slice(2) })
    })
    this.#renewer = setInterval(() => this.#renew(), Math.max(Math.floor(opts.leaseTtlMs / 3), 10))
    this.#renewer.unref()
  }

  /** Connects, or starts anyway and keeps trying: until Redis answers, new streams get 503. */
  static async open (opts: RedisCoordinatorOptions): Promise<RedisCoordinator> {
    const coordinator = new RedisCoordinator(opts)
    const up = await coordinator.#redis.connect().then(() => true, (err: unknown) => { coordinator.#failed(err); return false })
    await coordinator.#subscriber.connect().catch(() => {})
    const subscribed = coordinator.#subscriber.subscribe(coordinator.#channel)
    // Up: be subscribed before the first stream starts. Down: it completes on reconnect.
    if (up) await subscribed
    else subscribed.catch(() => {})
    return coordinator
  }

  /** A Redis call failed: said once per outage, not once per stream or request. */
  readonly #failed = (err: unknown): void => {
    if (this.#down) return
    this.#down = true
    this.#opts.onOutage?.('down', err)
  }

  /** A Redis call succeeded: the end of an outage, if one was on. */
  #answered (): void {
    if (!this.#down) return
    this.#down = false
    this.#opts.onOutage?.('up')
  }

  #limitKey (tenant: string | null): string {
    // One hash tag: both sets live in one slot, as a script touching both needs.
    return tenant === null ? `${this.#opts.keyPrefix}{limits}:all` : `${this.#opts.keyPrefix}{limits}:tenant:${tenant}`
  }

  #streamKey (id: string, part: 'meta' | 'events'): string {
    return `${this.#opts.keyPrefix}stream:{${id}}:${part}`
  }

  async acquire (tenant: string): Promise<AcquireResult> {
    const { maxPerTenant, maxTotal, leaseTtlMs } = this.#opts
    const id = randomUUID()
    // A slot freed before this call counts as free: its release goes out first.
    this.#releaseFreed()
    const verdict = await this.#reachable(this.#redis.amAcquire(this.#limitKey(null), this.#limitKey(tenant), id, maxPerTenant, maxTotal, leaseTtlMs))
    if (verdict === 2) return { ok: false, scope: 'global', limit: maxTotal }
    if (verdict === 1) return { ok: false, scope: 'tenant', limit: maxPerTenant }
    this.#leases.set(id, tenant)
    return {
      ok: true,
      lease: leaseOnce(tenant, id, this)
    }
  }

  /** Called once per lease, by the lease (see `leaseOnce`). */
  free (lease: Lease): void {
    // Every lease this coordinator gives out is named.
    const id = lease.id as string
    this.#leases.delete(id)
    // process.nextTick, not setImmediate: the release goes out with the writes of this callback
    // (a `done` among them), so a client that saw `done` and starts its next turn at once, on any
    // instance, does not find its old slot still held while this process's event loop is busy.
    if (this.#freed.size === 0) process.nextTick(this.#releaseFreed)
    const freed = this.#freed.get(lease.tenant)
    if (freed === undefined) this.#freed.set(lease.tenant, [id])
    else freed.push(id)
  }

  /**
   * Every stream that ended in the callback now running (under load, a commit's batch of turns
   * ends in one) frees its slot with one command per tenant, not one each. Later than at once by
   * the rest of that callback at most, which only errs on the safe side of the limits, and never
   * after a later acquire (it releases first).
   */
  readonly #releaseFreed = (): void => {
    if (this.#freed.size === 0) return
    const freed = this.#freed
    this.#freed = new Map()
    for (const [tenant, ids] of freed) {
      for (let i = 0; i < ids.length; i += RELEASE_BATCH) {
        // If Redis is away the slots are not lost: the leases expire unrenewed.
        this.#redis.amRelease(this.#limitKey(null), this.#limitKey(tenant), ...ids.slice(i, i + RELEASE_BATCH)).catch(() => {})
      }
    }
  }

  #renew (): void {
    if (this.#leases.size === 0) return
    const pipeline = this.#redis.pipeline()
    for (const [id, tenant] of this.#leases) pipeline.amRenew(this.#limitKey(null), this.#limitKey(tenant), id, this.#opts.leaseTtlMs)
    pipeline.exec().then(() => { this.#answered() }, this.#failed)
  }

  share (stream: SharedStreamInfo): StreamFeed {
    const { maxDurationMs, resumeTtlMs, maxEvents } = this.#opts
    const meta = this.#streamKey(stream.id, 'meta')
    const events = this.#streamKey(stream.id, 'events')
    const lifetime = maxDurationMs + resumeTtlMs
    // A stream outlives a Redis outage; it only stops being resumable elsewhere. Said once per outage.
    const report = this.#failed
    const fields = [
      'org', stream.orgId, 'user', stream.userId, 'agent', stream.agentId, 'lease', stream.leaseId ?? '', 'token', hashToken(stream.resumeToken).toString('hex')
    ]
    /** The meta's fields until the first call writes them with the first events (one command fewer), unless written now. */
    let announce = fields
    if (stream.findableAtOnce === true) {
      this.#redis.amOpen(meta, lifetime, ...fields).catch(report)
      announce = NOTHING
    }
    let written = false
    /** The events of this tick (a line each), written at its end, and the id of the last of them. */
    let pending = ''
    let last = 0
    const write = (ending: boolean): void => {
      deadlines.clear(held)
      const lines = pending
      pending = ''
      // Entries wholly older than the newest maxEvents go (with no frames, nothing is added or trimmed).
      this.#redis.amFlush(
        events, meta, written ? '' : lifetime, ending ? resumeTtlMs : '', `0-${Math.max(last - maxEvents, 0)}`, `0-${last}`, lines, ...announce
      ).catch(report)
      written = true
      announce = NOTHING
    }
    /** They wait for the turn's ending (see `holdForEnding`) while `held` is set. */
    const flush = (): void => {
      if (pending !== '' && !held.scheduled) write(false)
    }
    const feed: StreamFeed & DeadlineOwner = {
      // Redis per tick, not per event: all events a stream makes in one tick are one call.
      append: (id, entry) => {
        if (pending === '') {
          process.nextTick(flush)
          pending = entry
        } else {
          pending += `\n${entry}`
          // The ending's first event: what waited goes with this tick's events (or with the end marker).
          if (held.scheduled) {
            deadlines.clear(held)
            process.nextTick(flush)
          }
        }
        last = id
      },
      holdForEnding: (maxMs) => {
        if (pending === '' || held.scheduled) return
        deadlines.set(held, performance.now() + maxMs)
      },
      // Reached, the deadline is no longer set: what waited leaves.
      deadlineReached: flush,
      end: () => { write(true) }
    }
    const held = deadlines.for(feed)
    return feed
  }

  async find (id: string): Promise<RemoteStream | null> {
    const events = this.#streamKey(id, 'events')
    const [meta, newest, oldest] = await this.#reachable(Promise.all([
      this.#redis.hgetall(this.#streamKey(id, 'meta')),
      this.#redis.xrevrange(events, '+', '-', 'COUNT', 2) as Promise<Entry[]>,
      this.#redis.xrange(events, '-', '+', 'COUNT', 1) as Promise<Entry[]>
    ]))
    if (meta.org === undefined) return null
    const ended = newest[0]?.[0] === END_ID
    const last = ended ? newest[1] : newest[0]
    const lastId = last === undefined ? 0 : seq(last[0])
    const first = oldest[0]
    const firstId = first === undefined || first[0] === END_ID ? lastId + 1 : firstOf(first[0], eventsOf(first[1]))
    const token = Buffer.from(meta.token as string, 'hex')
    return {
      id,
      orgId: meta.org,
      userId: meta.user as string,
      agentId: meta.agent as string,
      lastId,
      firstId,
      ended,
      matchesToken: (candidate) => timingSafeEqual(hashToken(candidate), token),
      // share() always writes the lease field (empty for a stream shared without one).
      follow: (cursor, signal) => this.#follow(id, meta.lease as string, cursor, signal)
    }
  }

  /**
   * Nothing came for a while: is the producer still there? Appends the terminal event for all
   * readers when it died; returns a terminal event for this reader alone when the events are gone.
   */
  async #checkProducer (id: string, lease: string, next: number): Promise<LoggedEvent | null> {
    const lostFrame = this.#opts.lostFrame
    // The frame around its number, for the script to fill in the number it finds.
    const [before, after] = lostFrame(id, 0, 'producer_lost').split(`${id}:0`) as [string, string]
    const verdict = await this.#redis.amLost(this.#streamKey(id, 'events'), this.#limitKey(null), lease, `${before}${id}:`, after, this.#opts.resumeTtlMs)
    return verdict === -1 ? { id: next, frame: lostFrame(id, next, 'stream_lost') } : null
  }

  async * #follow (id: string, lease: string, cursor: number, signal: AbortSignal): AsyncIterable<LoggedEvent> {
    const events = this.#streamKey(id, 'events')
    const idLine = idLineOf(eventIdPrefix(id))
    // XREAD BLOCK holds its connection, so each follower gets its own, closed when it stops.
    const conn = this.#redis.duplicate({ enableOfflineQueue: true, commandTimeout: undefined, retryStrategy: () => null, maxRetriesPerRequest: 0 })
    conn.on('error', () => {})
    const stop = (): void => { conn.disconnect() }
    signal.addEventListener('abort', stop, { once: true })
    const beat = (): void => { this.#redis.publish(this.#channel, `r:${id}`).catch(() => {}) }
    beat()
    const heartbeat = setInterval(beat, this.#opts.heartbeatMs)
    try {
      let next = cursor + 1
      for (;;) {
        const batch = await conn.xread('COUNT', 512, 'BLOCK', this.#opts.followBlockMs, 'STREAMS', events, `0-${next - 1}`)
        if (batch === null) {
          // Nothing for a while: the producer may have died, or the events vanished with Redis' data.
          const lost = await this.#checkProducer(id, lease, next)
          if (lost === null) continue
          yield lost
          return
        }
        for (const [entryId, fields] of (batch[0] as [string, Entry[]])[1]) {
          if (entryId === END_ID) return
          // An entry holds one tick's events, numbered up to its id; a cursor may fall inside it.
          const entryEvents = eventsOf(fields)
          const first = firstOf(entryId, entryEvents)
          // Trimmed under a slow reader: the client resumes and learns the events are gone (410).
          if (first > next) throw new Error('stream events were trimmed before this reader got them')
          for (let i = next - first; i < entryEvents.length; i++, next++) yield { id: next, frame: frameOf(idLine, next, entryEvents[i] as string) }
        }
      }
    } finally {
      clearInterval(heartbeat)
      signal.removeEventListener('abort', stop)
      conn.disconnect()
    }
  }

  #idempotencyKey (key: string): string {
    return `${this.#opts.keyPrefix}idem:${createHash('sha256').update(key).digest('base64url')}`
  }

  async claimKey (key: string, value: string, ttlMs: number): Promise<string | null> {
    const k = this.#idempotencyKey(key)
    for (;;) {
      if (await this.#reachable(this.#redis.set(k, value, 'PX', ttlMs, 'NX')) === 'OK') return null
      const held = await this.#reachable(this.#redis.get(k))
      // Released or expired between the two calls: try to take it again.
      if (held !== null) return held
    }
  }

  async setKey (key: string, value: string): Promise<void> {
    await this.#reachable(this.#redis.set(this.#idempotencyKey(key), value, 'KEEPTTL', 'XX'))
  }

  async releaseKey (key: string): Promise<void> {
    await this.#reachable(this.#redis.del(this.#idempotencyKey(key)))
  }

  async cancel (id: string): Promise<void> {
    await this.#reachable(this.#redis.publish(this.#channel, `c:${id}`))
  }

  async cacheChanged (kind: CacheKind, id: string): Promise<void> {
    await this.#reachable(this.#redis.publish(this.#channel, `${CONTROL_LETTERS[kind]}:${id}`))
  }

  onControl (listener: ControlListener): void {
    this.#listeners.push(listener)
  }

  /** A Redis call on a request's path: when it fails, Redis counts as unreachable (the caller answers 503). */
  async #reachable<T> (pending: Promise<T>): Promise<T> {
    try {
      const value = await pending
      this.#answered()
      return value
    } catch (err) {
      this.#failed(err)
      throw new CoordinatorUnavailableError(err)
    }
  }

  async ping (): Promise<void> {
    await this.#redis.ping()
  }

  async close (): Promise<void> {
    clearInterval(this.#renewer)
    this.#releaseFreed()
    this.#subscriber.disconnect()
    // QUIT waits in BatchedRedis's queue behind the last events, end markers and releases.
    // disconnect() stops reconnecting when Redis is away.
    await this.#redis.quit().catch(() => {})
    this.#redis.disconnect()
  }
}
