import { createHash, randomUUID, timingSafeEqual } from 'node:crypto'
import { Redis, type Result } from 'ioredis'
import { leaseOnce, type AcquireResult, type ConcurrencyLimits } from '../limits/concurrency.js'
import type { LoggedEvent } from '../resume/replay-log.js'
import {
  CoordinatorUnavailableError, type ControlListener, type Coordinator, type RemoteStream, type SharedStreamInfo, type StreamFeed
} from './coordinator.js'

// Redis' own clock decides when a lease expires, so instances with skewed clocks agree.
const NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"

/** KEYS: global set, tenant set. ARGV: lease id, per-tenant max, total max, ttl ms. 0 ok, 1 tenant full, 2 global full. */
const ACQUIRE = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 2 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return 1 end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now + tonumber(ARGV[4]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[4])
end
return 0`

/** KEYS: global set, tenant set. ARGV: lease id, ttl ms. Only extends a lease that still exists. */
const RENEW = `${NOW}
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], 'XX', now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 0`

declare module 'ioredis' {
  interface RedisCommander<Context> {
    amAcquire: (global: string, tenant: string, lease: string, maxPerTenant: number, maxTotal: number, ttlMs: number) => Result<number, Context>
    amRenew: (global: string, tenant: string, lease: string, ttlMs: number) => Result<number, Context>
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
  /** How long a follower's XREAD blocks before it checks that the stream still exists. */
  followBlockMs?: number
  onError: (err: unknown) => void
}

/** Event n of a stream is entry `0-n`; the end marker `1-0` sorts after every event. */
const END_ID = '1-0'
const seq = (entryId: string): number => Number(entryId.slice(2))
const hashToken = (token: string): Buffer => createHash('sha256').update(token).digest()

type Entry = [id: string, fields: string[]]

/** A Redis call on a request's path: when it fails, Redis counts as unreachable (the caller answers 503). */
async function reachable<T> (pending: Promise<T>): Promise<T> {
  try {
    return await pending
  } catch (err) {
    throw new CoordinatorUnavailableError(err)
  }
}

/**
 * Limits, resume and cancel shared by every instance on one Redis. Leases are members of sorted
 * sets scored by expiry (taken atomically by a script, renewed by one timer for all of this
 * instance's streams); a stream's events go to a Redis Stream that any instance can replay and
 * follow; cancel and "still reading" travel over pub/sub.
 */
export class RedisCoordinator implements Coordinator {
  readonly kind = 'redis'
  readonly #opts: RedisCoordinatorOptions
  readonly #redis: Redis
  readonly #subscriber: Redis
  readonly #leases = new Map<string, string>()
  readonly #renewer: NodeJS.Timeout
  readonly #channel: string
  #listener: ControlListener = () => {}

  private constructor (opts: RedisCoordinatorOptions) {
    this.#opts = opts
    // Fail fast while Redis is away: a refused stream (503) beats one that waits on a queue.
    // Auto-pipelining sends every command of one tick (all streams' events) in one write. No MULTI
    // anywhere: it would bypass that queue and overtake commands issued before it.
    this.#redis = new Redis(opts.url, {
      enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 2000, lazyConnect: true, enableAutoPipelining: true
    })
    this.#redis.on('error', () => {}) // reported where a command fails; reconnecting is automatic
    this.#redis.defineCommand('amAcquire', { numberOfKeys: 2, lua: ACQUIRE })
    this.#redis.defineCommand('amRenew', { numberOfKeys: 2, lua: RENEW })
    // The subscription waits out an outage (no retry limit) and is renewed on every reconnect.
    this.#subscriber = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: null })
    this.#subscriber.on('error', () => {})
    this.#channel = `${opts.keyPrefix}control`
    this.#subscriber.on('message', (_channel: string, message: string) => {
      this.#listener({ type: message.startsWith('c:') ? 'cancel' : 'reader', id: message.slice(2) })
    })
    this.#renewer = setInterval(() => this.#renew(), Math.max(Math.floor(opts.leaseTtlMs / 3), 10))
    this.#renewer.unref()
  }

  /** Connects, or starts anyway and keeps trying: until Redis answers, new streams get 503. */
  static async open (opts: RedisCoordinatorOptions): Promise<RedisCoordinator> {
    const coordinator = new RedisCoordinator(opts)
    const up = await coordinator.#redis.connect().then(() => true, (err: unknown) => { opts.onError(err); return false })
    await coordinator.#subscriber.connect().catch(() => {})
    const subscribed = coordinator.#subscriber.subscribe(coordinator.#channel)
    // Up: be subscribed before the first stream starts. Down: it completes on reconnect.
    if (up) await subscribed
    else subscribed.catch(() => {})
    return coordinator
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
    const verdict = await reachable(this.#redis.amAcquire(this.#limitKey(null), this.#limitKey(tenant), id, maxPerTenant, maxTotal, leaseTtlMs))
    if (verdict === 2) return { ok: false, scope: 'global', limit: maxTotal }
    if (verdict === 1) return { ok: false, scope: 'tenant', limit: maxPerTenant }
    this.#leases.set(id, tenant)
    return {
      ok: true,
      lease: leaseOnce(tenant, () => {
        this.#leases.delete(id)
        // If Redis is away the slot is not lost: the lease expires unrenewed.
        this.#redis.zrem(this.#limitKey(null), id).catch(() => {})
        this.#redis.zrem(this.#limitKey(tenant), id).catch(() => {})
      })
    }
  }

  #renew (): void {
    if (this.#leases.size === 0) return
    const pipeline = this.#redis.pipeline()
    for (const [id, tenant] of this.#leases) pipeline.amRenew(this.#limitKey(null), this.#limitKey(tenant), id, this.#opts.leaseTtlMs)
    pipeline.exec().catch(this.#opts.onError)
  }

  share (stream: SharedStreamInfo): StreamFeed {
    const { maxDurationMs, resumeTtlMs, maxEvents, onError } = this.#opts
    const meta = this.#streamKey(stream.id, 'meta')
    const events = this.#streamKey(stream.id, 'events')
    const lifetime = maxDurationMs + resumeTtlMs
    let failed = false
    // A stream outlives a Redis outage; it only stops being resumable elsewhere. Said once per stream.
    const report = (err: unknown): void => {
      if (failed) return
      failed = true
      onError(err)
    }
    this.#redis.hset(meta, { org: stream.orgId, user: stream.userId, agent: stream.agentId, token: hashToken(stream.resumeToken).toString('hex') }).catch(report)
    this.#redis.pexpire(meta, lifetime).catch(report)
    return {
      append: (event) => {
        // One connection keeps order: the expiry lands right after the key exists.
        this.#redis.xadd(events, 'MAXLEN', '~', String(maxEvents), `0-${event.id}`, 'f', event.frame).catch(report)
        if (event.id === 1) this.#redis.pexpire(events, lifetime).catch(report)
      },
      end: () => {
        this.#redis.xadd(events, END_ID, 'end', '1').catch(report)
        this.#redis.pexpire(events, resumeTtlMs).catch(report)
        this.#redis.pexpire(meta, resumeTtlMs).catch(report)
      }
    }
  }

  async find (id: string): Promise<RemoteStream | null> {
    const events = this.#streamKey(id, 'events')
    const [meta, newest, oldest] = await reachable(Promise.all([
      this.#redis.hgetall(this.#streamKey(id, 'meta')),
      this.#redis.xrevrange(events, '+', '-', 'COUNT', 2) as Promise<Entry[]>,
      this.#redis.xrange(events, '-', '+', 'COUNT', 1) as Promise<Entry[]>
    ]))
    if (meta.org === undefined) return null
    const ended = newest[0]?.[0] === END_ID
    const last = ended ? newest[1] : newest[0]
    const lastId = last === undefined ? 0 : seq(last[0])
    const first = oldest[0]
    const firstId = first === undefined || first[0] === END_ID ? lastId + 1 : seq(first[0])
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
      follow: (cursor, signal) => this.#follow(id, cursor, signal)
    }
  }

  async * #follow (id: string, cursor: number, signal: AbortSignal): AsyncIterable<LoggedEvent> {
    const events = this.#streamKey(id, 'events')
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
        const batch = await conn.xread('COUNT', 512, 'BLOCK', this.#opts.followBlockMs ?? 5000, 'STREAMS', events, `0-${next - 1}`)
        if (batch === null) {
          // Nothing for a while: the stream may have expired with its instance gone.
          if (await conn.exists(events) === 0) return
          continue
        }
        for (const [entryId, fields] of (batch[0] as [string, Entry[]])[1]) {
          if (entryId === END_ID) return
          // Trimmed under a slow reader: the client resumes and learns the events are gone (410).
          if (seq(entryId) !== next) throw new Error('stream events were trimmed before this reader got them')
          next++
          yield { id: seq(entryId), frame: fields[1] as string }
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
      if (await reachable(this.#redis.set(k, value, 'PX', ttlMs, 'NX')) === 'OK') return null
      const held = await reachable(this.#redis.get(k))
      // Released or expired between the two calls: try to take it again.
      if (held !== null) return held
    }
  }

  async setKey (key: string, value: string): Promise<void> {
    await reachable(this.#redis.set(this.#idempotencyKey(key), value, 'KEEPTTL', 'XX'))
  }

  async releaseKey (key: string): Promise<void> {
    await reachable(this.#redis.del(this.#idempotencyKey(key)))
  }

  async cancel (id: string): Promise<void> {
    await reachable(this.#redis.publish(this.#channel, `c:${id}`))
  }

  onControl (listener: ControlListener): void {
    this.#listener = listener
  }

  async ping (): Promise<void> {
    await this.#redis.ping()
  }

  async close (): Promise<void> {
    clearInterval(this.#renewer)
    this.#subscriber.disconnect()
    // quit() lets queued commands (lease releases) go out first; disconnect() stops reconnecting when Redis is away.
    await this.#redis.quit().catch(() => {})
    this.#redis.disconnect()
  }
}
