import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { setTimeout as sleep } from 'node:timers/promises'
import { StreamRun } from '../lib/stream/run.js'
import { leaseOnce } from '../lib/limits/concurrency.js'
import { StreamRegistry, type LocalStream } from '../lib/stream/registry.js'
import { ReplayBudget } from '../lib/stream/replay-log.js'
import { LocalCoordinator } from '../lib/coord/local.js'
import { makeChunk } from '../lib/protocol/chunk.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function endedStream (registry: StreamRegistry, onRun: (run: StreamRun) => void = () => {}): LocalStream {
  const run = new StreamRun({
    orgId: 'org', agentId: 'agent', requestId: 'req', lease: leaseOnce('org', undefined, { free: () => {} }),
    timeouts: { firstTokenMs: 60_000, idleMs: 60_000, maxDurationMs: 60_000 }, onEnd: () => {}
  })
  onRun(run)
  const stream = registry.open(run, 'user', false)
  stream.sink.start(makeChunk('start', {}, { stream_id: run.id }))
  stream.sink.content('Hi')
  stream.sink.finish(makeChunk('done', { memories_count: 0 }))
  stream.sink.end(false)
  run.release('done')
  registry.ended(stream)
  return stream
}

/** A registry whose ended streams are kept `ttlMs`, within `maxRetainedBytes`; closed when the test ends. */
function registryFor (t: Tap.Test, ttlMs: number, maxRetainedBytes = 1 << 30): StreamRegistry {
  const registry = new StreamRegistry({
    ttlMs,
    graceMs: 0,
    maxRetainedBytes,
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

t.test('an ended stream kept for resumes lets go of its run, and still replays', async (t) => {
  const registry = registryFor(t, 60_000)
  let run: WeakRef<StreamRun> | undefined
  const stream = endedStream(registry, (r) => { run = new WeakRef(r) })
  await sleep(0)
  gc()
  t.equal(run?.deref(), undefined, 'the run (its state machine, cancellation, deadline, lease) was collected')
  t.equal(registry.get(stream.id), stream, 'the stream is still found')
  t.ok(stream.ended)
  t.equal(stream.newestId, 3)
  t.same(stream.sink.log.after(1)?.map((e) => e.frame), [
    `id: ${stream.id}:2\ndata: {"chunk_type":"content","content":"Hi","tool_call":null,"memories_count":null}\n\n`,
    `id: ${stream.id}:3\ndata: {"chunk_type":"done","content":null,"tool_call":null,"memories_count":0}\n\n`
  ], 'its events replay as they were sent')
  t.equal(await stream.cancel(), false, 'an ended stream cannot be cancelled')
})

t.test('ended streams leave in the order they ended, whether the budget, the sweeper or a lookup lets them go', async (t) => {
  const probe = registryFor(t, 60_000)
  endedStream(probe)
  const one = probe.retainedBytes
  const registry = registryFor(t, 60_000, 3 * one)
  const [a, b, c] = [endedStream(registry), endedStream(registry), endedStream(registry)]
  // b expired early (its lookup forgets it, out of order); a stays the oldest.
  b.endedAt = Date.now() - 60_001
  t.equal(registry.get(b.id), undefined)
  const d = endedStream(registry)
  t.equal(registry.retainedBytes, 3 * one, 'a, c and d fit')
  const e = endedStream(registry)
  t.same([a, c, d, e].map((s) => registry.get(s.id) === s), [false, true, true, true], 'over the budget the oldest kept one went: a')
  t.equal(registry.retainedBytes, 3 * one)
  // Thousands more: only the newest three are kept, and the bookkeeping stays exact.
  const last = Array.from({ length: 3000 }, () => endedStream(registry)).slice(-3)
  t.equal(registry.retainedBytes, 3 * one)
  t.same([c, d, e, ...last].map((s) => registry.get(s.id) === s), [false, false, false, true, true, true])
})
