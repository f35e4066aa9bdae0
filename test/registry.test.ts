import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { setTimeout as sleep } from 'node:timers/promises'
import { StreamRun } from '../lib/stream/run.js'
import { leaseOnce } from '../lib/limits/concurrency.js'
import { StreamRegistry } from '../lib/stream/registry.js'
import type { StreamHandle } from '../lib/stream/handle.js'
import { ReplayBudget } from '../lib/stream/replay-log.js'
import { LocalCoordinator } from '../lib/coord/local.js'
import type { ControlListener } from '../lib/coord/coordinator.js'
import { makeChunk } from '../lib/protocol/chunk.js'
import { AppResponse } from '../lib/http/response.js'
import { KeepAliveTicker } from '../lib/sse/keep-alive.js'
import { writerFactory } from '../lib/sse/writers.js'
import { request } from './helpers/sse-client.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function newRun (): StreamRun {
  return new StreamRun({
    orgId: 'org', agentId: 'agent', requestId: 'req', lease: leaseOnce('org', undefined, { free: () => {} }),
    timeouts: { firstTokenMs: 60_000, idleMs: 60_000, maxDurationMs: 60_000 }, onEnd: () => {}
  })
}

/** A stream that ran start, "Hi", done, and ended the way the supervisor ends one: its id. */
function endedStream (registry: StreamRegistry, onRun: (run: StreamRun) => void = () => {}): string {
  const run = newRun()
  onRun(run)
  const stream = registry.open(run, 'user', false)
  stream.sink.start(makeChunk('start', {}, { stream_id: run.id }))
  stream.sink.content('Hi')
  stream.sink.finish(makeChunk('done', { memories_count: 0 }))
  stream.sink.end(false)
  run.release('done')
  registry.ended(run.id)
  return run.id
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

/** A real server whose every request follows `handle` from the cursor in its `?after=`; its URL. */
async function serveFollowing (t: Tap.Test, handle: StreamHandle): Promise<string> {
  const keepAlive = new KeepAliveTicker(60_000)
  const newWriter = writerFactory({ keepAlive, drainTimeoutMs: 1000, retryMs: 1000, maxCompressed: 0 })
  const server = http.createServer({ ServerResponse: AppResponse }, (req, res) => {
    const cursor = Number(new URL(req.url as string, 'http://x').searchParams.get('after'))
    handle.follow(req, res, cursor, newWriter).catch((err: Error) => {
      res.writeHead(410)
      res.end(err.message)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
}

t.test('an ended stream lets go of its run and its objects, and still replays over a real connection', async (t) => {
  const registry = registryFor(t, 60_000)
  let run: WeakRef<StreamRun> | undefined
  const id = endedStream(registry, (r) => { run = new WeakRef(r) })
  await sleep(0)
  gc()
  t.equal(run?.deref(), undefined, 'the run (its state machine, cancellation, deadline, lease) was collected')
  const stream = registry.get(id) as StreamHandle
  t.ok(stream.ended)
  t.equal(stream.newestId, 3)
  t.equal(stream.userId, 'user')
  t.equal(stream.orgId, 'org')
  t.equal(stream.agentId, 'agent')
  t.equal(await stream.cancel(), false, 'an ended stream cannot be cancelled')
  const url = await serveFollowing(t, stream)
  const replay = await request(`${url}?after=1`, { method: 'GET' })
  t.equal(replay.status, 200)
  t.equal(replay.raw, `retry: 1000\nid: ${id}:2\ndata: {"chunk_type":"content","content":"Hi","tool_call":null,"memories_count":null}\n\n` +
    `id: ${id}:3\ndata: {"chunk_type":"done","content":null,"tool_call":null,"memories_count":0}\n\n`, 'its events replay byte for byte, then the response ends')
})

t.test('an ended stream whose first events no longer fit its replay bound answers a cursor before them with 410', async (t) => {
  const registry = registryFor(t, 60_000)
  const run = newRun()
  const stream = registry.open(run, 'user', false)
  stream.sink.start(makeChunk('start', {}, { stream_id: run.id }))
  // Twelve events through a log of ten: the first two are gone.
  for (let i = 0; i < 10; i++) stream.sink.content(`t${i}`)
  stream.sink.finish(makeChunk('done', { memories_count: 0 }))
  stream.sink.end(false)
  run.release('done')
  registry.ended(run.id)
  const url = await serveFollowing(t, registry.get(run.id) as StreamHandle)
  const gone = await request(`${url}?after=1`, { method: 'GET' })
  t.equal(gone.status, 410)
  const kept = await request(`${url}?after=2`, { method: 'GET' })
  t.same(kept.events.map((e) => e.id), Array.from({ length: 10 }, (_, i) => `${run.id}:${i + 3}`), 'from event 3 on, all of them')
})

t.test('a request that found the stream live and follows it after it ended replays it and cannot cancel it', async (t) => {
  const registry = registryFor(t, 60_000)
  const run = newRun()
  const found = registry.open(run, 'user', false)
  found.sink.start(makeChunk('start', {}, { stream_id: run.id }))
  found.sink.finish(makeChunk('done', { memories_count: 0 }))
  found.sink.end(false)
  run.release('done')
  registry.ended(run.id)
  t.not(registry.get(run.id), found, 'the registry keeps it as an ended stream now')
  t.equal(await found.cancel(), false)
  const url = await serveFollowing(t, found)
  const replay = await request(`${url}?after=0`, { method: 'GET' })
  t.same(replay.types(), ['start', 'done'], 'written and ended at once')
})

t.test('a run that never became a stream ends without a trace here', async (t) => {
  const registry = registryFor(t, 60_000)
  const run = newRun()
  run.release('cancelled')
  registry.ended(run.id)
  t.equal(registry.get(run.id), undefined)
  t.equal(registry.retainedBytes, 0)
})

t.test('the sweeper forgets expired streams that nobody looks up', async (t) => {
  const registry = registryFor(t, 100)
  endedStream(registry)
  t.ok(registry.retainedBytes > 0, 'kept while within its TTL, for resume')
  let released = false
  for (let i = 0; i < 100 && !released; i++) {
    await sleep(20)
    released = registry.retainedBytes === 0
  }
  t.ok(released, 'forgotten after its TTL without a lookup')
})

t.test('ended streams leave in the order they ended when the budget is full', async (t) => {
  const probe = registryFor(t, 60_000)
  endedStream(probe)
  const one = probe.retainedBytes
  const registry = registryFor(t, 60_000, 3 * one)
  const [a, b, c] = [endedStream(registry), endedStream(registry), endedStream(registry)]
  t.equal(registry.retainedBytes, 3 * one, 'three fit')
  const d = endedStream(registry)
  t.same([a, b, c, d].map((id) => registry.get(id) !== undefined), [false, true, true, true], 'over the budget the oldest kept one went: a')
  t.equal(registry.retainedBytes, 3 * one)
})

t.test('a live stream is found as itself; cancels and readers from other instances reach only live streams', async (t) => {
  const local = new LocalCoordinator({ maxPerTenant: 1, maxTotal: 1 })
  let control: ControlListener = () => {}
  const registry = new StreamRegistry({
    ttlMs: 60_000,
    graceMs: 60_000,
    maxRetainedBytes: 1 << 20,
    replayLimits: { maxEvents: 10, maxBytes: 1024 },
    liveReplay: new ReplayBudget(1 << 20),
    coordinator: { share: (info) => local.share(info), onControl: (listener) => { control = listener } },
    onSlowReader: () => {}
  })
  t.teardown(() => registry.close())
  const run = newRun()
  const stream = registry.open(run, 'user', false)
  t.equal(registry.get(run.id), stream)
  const ended = endedStream(registry)
  // Nothing to do for an ended stream, one this instance does not have, or a cache announcement.
  control({ type: 'cancel', id: ended })
  control({ type: 'reader', id: 'stream-elsewhere' })
  control({ type: 'agent', id: run.id })
  t.equal(run.cancel.aborted, false)
  // A reader elsewhere keeps a stream with no reader here going: its grace period starts again.
  stream.readersGone(new Error('left'))
  control({ type: 'reader', id: run.id })
  t.equal(run.cancel.aborted, false)
  control({ type: 'cancel', id: run.id })
  await sleep(0)
  t.equal(run.cancel.aborted, true, 'a cancel reaches the live stream')
  stream.stopGrace()
  run.release('cancelled')
})
