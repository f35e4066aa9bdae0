import type { ServerOptions } from '../config.js'
import type { Logger } from '../observability/logger.js'
import { lostFrame } from '../protocol/lost-frame.js'
import type { Coordinator } from './coordinator.js'
import { LocalCoordinator } from './local.js'
import { RedisCoordinator } from './redis.js'

/** Redis when `redisUrl` is set (limits, resume and cancel across instances), else this process alone. */
export async function openCoordinator (options: ServerOptions, onError: (err: unknown) => void, logger: Logger): Promise<Coordinator> {
  const limits = { maxPerTenant: options.streamMaxPerTenant, maxTotal: options.streamMaxTotal }
  if (options.redisUrl === undefined) return new LocalCoordinator(limits)
  return await RedisCoordinator.open({
    ...limits,
    url: options.redisUrl,
    keyPrefix: options.redisKeyPrefix,
    leaseTtlMs: options.redisLeaseTtlMs,
    resumeTtlMs: options.streamResumeTtlMs,
    maxDurationMs: options.streamMaxDurationMs,
    maxEvents: options.streamReplayMaxEvents,
    // Well inside the grace period, so one lost heartbeat does not end a stream somebody reads.
    heartbeatMs: Math.max(Math.floor(options.streamDetachGraceMs / 3), 100),
    // Readers check a quiet stream's producer this often, so a dead one is noticed soon after its lease expires.
    followBlockMs: Math.min(5000, Math.max(Math.floor(options.redisLeaseTtlMs / 3), 50)),
    lostFrame,
    onError,
    onOutage: (state, err) => {
      if (state === 'down') logger.warn({ err }, 'redis unreachable: new streams, remote resume and cancel answer 503 until it is back')
      else logger.info('redis reachable again')
    }
  })
}
