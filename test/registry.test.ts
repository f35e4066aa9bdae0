import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { setTimeout as sleep } from 'node:timers/promises'
import { StreamRun } from '../lib/stream/run.js'
import { leaseOnce } from '../lib/limits/concurrency.js'
import { StreamRegistry, type LocalStream } from '../lib/stream/registry.js'
import { ReplayBudget } from '../lib/stream/replay-log.js'
import { LocalCoordinator } from '../lib/coord/local.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function endedStream (registry: StreamRegistry): LocalStream {
  const run = new StreamRun({
    orgId: 'org', agentId: 'agent', requestId: 'req', lease: leaseOnce('org', undefined, { free: () => {} }),
    timeouts: { firstTokenMs: 60_000, idleMs: 60_000, maxDurationMs: 60_000 }, onEnd: () => {}
  })
  run.release('done')
  const stream = registry.open(run, 'user', false)
  registry.ended(stream)
  return stream
}

/** A registry whose ended streams are kept `ttlMs`; closed when the test ends. */
function registryFor (t: Tap.Test, ttlMs: number): StreamRegistry {
  const registry = new StreamRegistry({
    ttlMs,
    graceMs: 0,
    maxRetainedBytes: 1 << 30,
    replayLimits: { maxEvents: 10, maxBytes: 1024 },
    liveReplay: new ReplayBudget(1 << 20),
    coordinator: new LocalCoordinator({ maxPerTenant: 1, maxTotal: 1 }),
    onSlowReader: () => {}
  })
  t.teardown(() => registry.close())
  return registry
}

t.test('the sweeper lets go of an expired stream that nobody looks up', async (t) => {
  const registry = registryFor(t, 100)
  const ended = new WeakRef(endedStream(registry))
  await sleep(0)
  gc()
  t.ok(ended.deref() !== undefined, 'kept while within its TTL, for resume')
  let released = false
  for (let i = 0; i < 100 && !released; i++) {
    await sleep(20)
    gc()
    released = ended.deref() === undefined
  }
  t.ok(released, 'released after its TTL without a lookup')
})

t.test('a lookup lets go of an expired stream the sweeper has not reached yet', async (t) => {
  const registry = registryFor(t, 60_000)
  const stream = endedStream(registry)
  t.equal(registry.get(stream.id), stream, 'within its TTL it is found')
  // Ended longer ago than the TTL; the sweeper (every 60 s here) has not run since.
  stream.endedAt = Date.now() - 60_001
  t.equal(registry.get(stream.id), undefined, 'past it, the lookup finds nothing')
  stream.endedAt = Date.now()
  t.equal(registry.get(stream.id), undefined, 'and it was forgotten, not only hidden')
})
