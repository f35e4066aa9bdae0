import t, { type Test } from 'tap'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { CoordinatorUnavailableError, type Coordinator, type RemoteStream } from '../lib/coord/coordinator.js'
import { LocalCoordinator } from '../lib/coord/local.js'
import { RedisCoordinator, type RedisCoordinatorOptions } from '../lib/coord/redis.js'
import { contentLiteral } from '../lib/protocol/chunk.js'
import type { Lease } from '../lib/limits/concurrency.js'
import { REDIS_URL } from './helpers/redis.js'
import { Redis } from 'ioredis'
import { until } from './helpers/settle.js'

const LIMITS = { maxPerTenant: 2, maxTotal: 3 }

async function openRedis (t: Test, opts: Partial<RedisCoordinatorOptions> & { keyPrefix?: string } = {}): Promise<RedisCoordinator> {
  const coordinator = await RedisCoordinator.open({
    ...LIMITS,
    url: REDIS_URL,
    keyPrefix: `test:${randomBytes(6).toString('hex')}:`,
    leaseTtlMs: 30_000,
    resumeTtlMs: 60_000,
    maxDurationMs: 60_000,
    maxEvents: 100,
    heartbeatMs: 50,
    followBlockMs: 100,
    lostFrame: (id, seq, code) => `id: ${id}:${seq}\ndata: {"code":"${code}"}\n\n`,
    onError: (err) => { throw err },
    ...opts
  })
  t.teardown(async () => { await coordinator.close() })
  return coordinator
}

const implementations: Record<string, (t: Test) => Promise<Coordinator>> = {
  local: async () => new LocalCoordinator(LIMITS),
  redis: async (t) => await openRedis(t)
}

function leaseOf (result: Awaited<ReturnType<Coordinator['acquire']>>): Lease {
  if (!result.ok) throw new Error(`refused by the ${result.scope} limit`)
  return result.lease
}

// The contract: both coordinators answer the same way.
for (const [kind, open] of Object.entries(implementations)) {
  t.test(`${kind}: per-tenant and global limits, released exactly once`, async (t) => {
    const c = await open(t)
    t.equal(c.kind, kind)
    const a1 = leaseOf(await c.acquire('a'))
    leaseOf(await c.acquire('a'))
    t.same(await c.acquire('a'), { ok: false, scope: 'tenant', limit: 2 }, 'third stream of one tenant refused')
    leaseOf(await c.acquire('b'))
    t.same(await c.acquire('c'), { ok: false, scope: 'global', limit: 3 }, 'fourth stream overall refused')
    a1.release()
    a1.release()
    leaseOf(await c.acquire('c'))
    t.same(await c.acquire('a'), { ok: false, scope: 'global', limit: 3 }, 'a double release freed one slot, not two')
    await c.ping()
  })

  t.test(`${kind}: an idempotency key is taken once, holds its value, expires with its TTL, and can be given up`, async (t) => {
    const c = await open(t)
    t.equal(await c.claimKey('k1', 'first', 200), null, 'the first claim takes it')
    t.equal(await c.claimKey('k1', 'second', 200), 'first', 'a second claim gets the value it holds')
    const racing = await Promise.all([c.claimKey('k2', 'a', 5000), c.claimKey('k2', 'b', 5000)])
    t.same(racing.filter((v) => v === null).length, 1, 'of two racing claims exactly one wins')
    await c.setKey('k1', 'settled')
    t.equal(await c.claimKey('k1', 'third', 200), 'settled', 'setKey replaces the value')
    await c.releaseKey('k2')
    t.equal(await c.claimKey('k2', 'again', 5000), null, 'a released key can be taken again')
    await sleep(300)
    t.equal(await c.claimKey('k1', 'after expiry', 200), null, 'an expired key can be taken again (setKey kept its expiry)')
    await c.setKey('never-claimed', 'x')
    t.equal(await c.claimKey('never-claimed', 'y', 200), null, 'setKey does not create a key')
  })

  t.test(`${kind}: a stream unknown to the coordinator is not found, and cancelling it is harmless`, async (t) => {
    const c = await open(t)
    t.equal(await c.find('stream-nope'), null, 'not found')
    await t.resolves(c.cancel('stream-nope'))
  })
}

t.test('local: streams are not shared', async (t) => {
  const c = new LocalCoordinator(LIMITS)
  t.equal(c.share({ id: 's', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' }), null)
  await c.close()
})

t.test('redis: limits hold across instances sharing one Redis', async (t) => {
  const keyPrefix = `test:${randomBytes(6).toString('hex')}:`
  const a = await openRedis(t, { keyPrefix })
  const b = await openRedis(t, { keyPrefix })
  leaseOf(await a.acquire('tenant'))
  leaseOf(await b.acquire('tenant'))
  t.same(await b.acquire('tenant'), { ok: false, scope: 'tenant', limit: 2 })
  t.same(await a.acquire('tenant'), { ok: false, scope: 'tenant', limit: 2 })
})

t.test('redis: a crashed instance stops renewing, and its slots come back after the lease TTL', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const survivor = await openRedis(t, { keyPrefix: prefix, leaseTtlMs: 300 })
  const crashed = await RedisCoordinator.open({ ...LIMITS, url: REDIS_URL, keyPrefix: prefix, leaseTtlMs: 300, resumeTtlMs: 1000, maxDurationMs: 1000, maxEvents: 10, heartbeatMs: 50, followBlockMs: 100, lostFrame: () => '', onError: () => {} })
  leaseOf(await crashed.acquire('t'))
  leaseOf(await crashed.acquire('t'))
  leaseOf(await crashed.acquire('u'))
  // While its owner renews, the lease outlives its TTL.
  await sleep(600)
  t.same(await survivor.acquire('v'), { ok: false, scope: 'global', limit: 3 }, 'renewed leases still count, globally')
  await crashed.close() // stops renewing without releasing, as a killed process would
  await until(async () => (await survivor.acquire('v')).ok, 5000, 'global slots came back within the TTL')
  // Each lease is renewed by a script call of its own, on Redis' clock, so the crashed instance's
  // leases expire a millisecond or more apart: the first free slot says only that one did.
  let tenant = false
  await until(async () => (tenant = (await survivor.acquire('t')).ok), 5000, 'the tenant\'s slots came back within the TTL')
  t.ok(tenant, 'and the tenant\'s: its set, full of expired leases, is swept too')
})

t.test('redis: a shared stream is found, replayed and followed live on another instance', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const runner = await openRedis(t, { keyPrefix: prefix })
  const reader = await openRedis(t, { keyPrefix: prefix })
  const heard: string[] = []
  runner.onControl((m) => heard.push(`${m.type}:${m.id}`))
  const info = { id: 'stream-1', orgId: 'org', userId: 'user', agentId: 'agent', resumeToken: 'secret-token', leaseId: leaseOf(await runner.acquire('org')).id }
  const feed = runner.share(info)
  let lastId = 0
  const append = (entry: string): void => { feed.append(++lastId, entry) }
  append('{"n":1}')
  append(contentLiteral('two\n"quoted"\u2028'))
  await until(async () => (await reader.find('stream-1'))?.lastId === 2, 5000, '(await reader.find(\'stream-1\'))?.lastId === 2')
  const found = await reader.find('stream-1')
  t.match(found, { id: 'stream-1', orgId: 'org', userId: 'user', agentId: 'agent', lastId: 2, firstId: 1, ended: false })
  t.ok(found?.matchesToken('secret-token'))
  t.notOk(found?.matchesToken('guess-token-!'))

  const got: string[] = []
  const following = (async () => {
    for await (const e of (found as NonNullable<typeof found>).follow(1, new AbortController().signal)) got.push(`${e.id}:${e.frame}`)
  })()
  await until(() => got.length === 1, 5000, 'got.length === 1')
  append('{"n":3}')
  feed.end()
  await following
  t.same(got, [
    '2:id: stream-1:2\ndata: {"chunk_type":"content","content":"two\\n\\"quoted\\"\\u2028","tool_call":null,"memories_count":null}\n\n',
    '3:id: stream-1:3\ndata: {"n":3}\n\n'
  ], 'replay after the cursor (a content event kept as its text, framed again), then live, then stop at the end')
  t.ok(heard.includes('reader:stream-1'), 'the running instance heard that somebody reads')
  t.match(await reader.find('stream-1'), { lastId: 3, ended: true })

  await reader.cancel('stream-1')
  await until(() => heard.includes('cancel:stream-1'), 5000, 'cancel reached the running instance')
})

t.test('redis: a cache change (agent, memories) reaches every listener of every other instance; unknown messages are ignored', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const a = await openRedis(t, { keyPrefix: prefix })
  const b = await openRedis(t, { keyPrefix: prefix })
  const first: string[] = []
  const second: string[] = []
  b.onControl((m) => first.push(`${m.type}:${m.id}`))
  b.onControl((m) => second.push(`${m.type}:${m.id}`))
  const raw = new Redis(REDIS_URL)
  t.teardown(() => raw.disconnect())
  // From a newer version, say: neither a known letter nor the form.
  await raw.publish(`${prefix}control`, 'z:whatever')
  await raw.publish(`${prefix}control`, 'a-no-colon')
  await a.cacheChanged('agent', 'org\0agent-1')
  await a.cacheChanged('memories', 'org\0agent-1\0user-1')
  await until(() => first.length === 2 && second.length === 2, 5000, 'both listeners to hear both changes')
  t.same(first, ['agent:org\0agent-1', 'memories:org\0agent-1\0user-1'])
  t.same(second, first)
})

t.test('local: a cache change has nobody else to tell', async (t) => {
  await t.resolves(new LocalCoordinator(LIMITS).cacheChanged('agent', 'o\0a'))
})

t.test('redis: a stream shared findable at once, before its first event, and one ended without any', async (t) => {
  const c = await openRedis(t)
  const feed = c.share({ id: 'empty', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x', findableAtOnce: true })
  await until(async () => (await c.find('empty')) !== null, 5000, '(await c.find(\'empty\')) !== null')
  t.match(await c.find('empty'), { lastId: 0, firstId: 1, ended: false }, 'known, with nothing to replay yet')
  feed.end()
  await until(async () => (await c.find('empty'))?.ended === true, 5000, '(await c.find(\'empty\'))?.ended === true')
  t.match(await c.find('empty'), { lastId: 0, firstId: 1, ended: true })
})

t.test('redis: a stream shared without findableAtOnce is announced with its first events', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const c = await openRedis(t, { keyPrefix: prefix })
  const raw = new Redis(REDIS_URL)
  t.teardown(() => { raw.disconnect() })
  const feed = c.share({ id: 'later', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x', leaseId: 'l' })
  await c.ping() // behind anything share() sent
  t.equal(await c.find('later'), null, 'nobody knows its id before its start event, so nothing is written yet')
  feed.append(1, '{}')
  await until(async () => (await c.find('later')) !== null, 5000, 'the stream to be found with its first event')
  t.match(await c.find('later'), { orgId: 'o', userId: 'u', agentId: 'a', lastId: 1, firstId: 1, ended: false })
  t.ok((await c.find('later'))?.matchesToken('x'), 'with its resume token\'s hash')
  t.equal(await raw.hget(`${prefix}stream:{later}:meta`, 'lease'), 'l')
  feed.end()
  await until(async () => (await c.find('later'))?.ended === true, 5000, 'the end marker')
  const ttl = await raw.pttl(`${prefix}stream:{later}:meta`)
  t.ok(ttl > 0 && ttl <= 60_000, `the meta, written with the first events, lives as long as a resume may come once it ended (${ttl} ms)`)
  // Ended with no event at all: announced by the ending.
  const none = c.share({ id: 'none', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' })
  none.end()
  await until(async () => (await c.find('none'))?.ended === true, 5000, 'the stream that ended without events to be found')
  t.match(await c.find('none'), { lastId: 0, firstId: 1, ended: true, orgId: 'o' })
})

t.test('redis: events held for the ending go with it in one call; held alone, they leave within the bound', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const c = await openRedis(t, { keyPrefix: prefix })
  const raw = new Redis(REDIS_URL)
  const monitor = await raw.monitor()
  t.teardown(() => { monitor.disconnect(); raw.disconnect() })
  const calls = new Map<string, number>()
  monitor.on('monitor', (_time: string, args: string[]) => {
    const key = args.find((a) => a.startsWith(prefix) && a.endsWith(':events'))
    if (key !== undefined && /^eval/i.test(args[0] ?? '')) calls.set(key, (calls.get(key) ?? 0) + 1)
  })
  const eventsOf = (id: string): string => `${prefix}stream:{${id}}:events`

  // A short turn: start and words in one tick, the reply complete; the ending a store's round trip later.
  const turn = c.share({ id: 'short', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' })
  turn.append(1, '{"chunk_type":"start"}')
  turn.append(2, contentLiteral('Hi'))
  turn.holdForEnding(60_000)
  turn.holdForEnding(60_000) // once is enough
  await sleep(50)
  await c.ping()
  t.equal(await c.find('short'), null, 'held: nothing is written at the end of the tick')
  turn.append(3, '{"chunk_type":"done"}')
  turn.end()
  await until(async () => (await c.find('short'))?.ended === true, 5000, 'the stream with its ending')
  t.match(await c.find('short'), { lastId: 3, firstId: 1, ended: true, orgId: 'o' })
  const replayed: string[] = []
  for await (const e of (await c.find('short') as RemoteStream).follow(0, new AbortController().signal)) replayed.push(e.frame)
  t.same(replayed, ['id: short:1\ndata: {"chunk_type":"start"}\n\n', 'id: short:2\ndata: {"chunk_type":"content","content":"Hi","tool_call":null,"memories_count":null}\n\n',
    'id: short:3\ndata: {"chunk_type":"done"}\n\n'], 'every event, in order')
  await until(async () => calls.has(eventsOf('short')), 5000, 'the call seen by MONITOR')
  t.equal(calls.get(eventsOf('short')), 1, 'events, meta and end marker in one call')

  // The ending's first event comes in a later tick than its end: what waited goes with it.
  const split = c.share({ id: 'split', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' })
  split.append(1, '{"n":1}')
  split.holdForEnding(60_000)
  await sleep(20)
  split.append(2, '{"n":2}')
  await until(async () => (await c.find('split'))?.lastId === 2, 5000, 'both events, at the end of that tick')
  split.end()
  await until(async () => (await c.find('split'))?.ended === true, 5000, 'the end marker')

  // Nothing follows in time (a slow store): the events leave at the bound, with no append or end.
  const slow = c.share({ id: 'slow', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' })
  slow.append(1, '{"n":1}')
  slow.holdForEnding(300)
  await sleep(50)
  await c.ping()
  t.equal(await c.find('slow'), null, 'still held')
  await until(async () => (await c.find('slow'))?.lastId === 1, 5000, 'the event once the bound passed')
  slow.end()

  // Ended while held with no event after (a turn cut while storing, its reader gone): one call, the bound dropped.
  const cut = c.share({ id: 'cut', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' })
  cut.append(1, '{"n":1}')
  cut.holdForEnding(300)
  cut.end()
  await until(async () => (await c.find('cut'))?.ended === true, 5000, 'the held event with the end marker')
  t.match(await c.find('cut'), { lastId: 1, ended: true })
  await sleep(400)
  t.equal(calls.get(eventsOf('cut')), 1, 'and nothing more when the bound would have passed')

  // Held with nothing appended in the tick: nothing to hold, the next events leave at their tick's end.
  const quiet = c.share({ id: 'quiet', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' })
  quiet.holdForEnding(60_000)
  quiet.append(1, '{"n":1}')
  await until(async () => (await c.find('quiet'))?.lastId === 1, 5000, 'the event at the end of its tick')
  quiet.end()
})

t.test('redis: a follower stops when its reader leaves, and when the stream expired unended', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const runner = await openRedis(t, { keyPrefix: prefix, maxDurationMs: 300, resumeTtlMs: 100 })
  const feed = runner.share({ id: 's', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x', leaseId: leaseOf(await runner.acquire('o')).id })
  feed.append(1, '{}')
  await until(async () => (await runner.find('s')) !== null, 5000, '(await runner.find(\'s\')) !== null')
  const found = await runner.find('s') as RemoteStream
  const leaving = new AbortController()
  const read = async (signal: AbortSignal): Promise<number> => {
    let n = 0
    for await (const e of found.follow(0, signal)) n += e.id
    return n
  }
  const left = read(leaving.signal)
  await sleep(100)
  leaving.abort()
  await t.rejects(left, 'an aborted follow rejects (its connection was closed)')
  // Nobody ends it and its producer lives on: its keys expire, and a follower does not wait forever.
  const frames: string[] = []
  for await (const e of found.follow(0, new AbortController().signal)) frames.push(e.frame)
  t.same(frames, ['id: s:1\ndata: {}\n\n', 'id: s:2\ndata: {"code":"stream_lost"}\n\n'], 'follows until the keys expire, then ends with a terminal event')
})

t.test('redis: a stream whose producer died ends for every reader, and for later resumes, with one terminal event', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const runner = await openRedis(t, { keyPrefix: prefix })
  const reader = await openRedis(t, { keyPrefix: prefix })
  const lease = leaseOf(await runner.acquire('o'))
  const feed = runner.share({ id: 'p', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x', leaseId: lease.id })
  feed.append(1, '{"n":1}')
  await until(async () => (await reader.find('p'))?.lastId === 1, 5000, '(await reader.find(\'p\'))?.lastId === 1')
  const found = await reader.find('p') as RemoteStream
  const frames = async (): Promise<string[]> => {
    const got: string[] = []
    for await (const e of found.follow(0, new AbortController().signal)) got.push(e.frame)
    return got
  }
  const [first, second] = [frames(), frames()]
  await sleep(250)
  t.match(await reader.find('p'), { lastId: 1, ended: false }, 'a quiet stream whose producer holds its lease is followed, not ended')
  lease.release() // as a dead instance's lease expires
  const expected = ['id: p:1\ndata: {"n":1}\n\n', 'id: p:2\ndata: {"code":"producer_lost"}\n\n']
  t.same(await first, expected, 'each reader gets the terminal event')
  t.same(await second, expected, 'once: the log holds it once')
  t.match(await reader.find('p'), { lastId: 2, ended: true })
  t.same(await frames(), expected, 'a later resume ends at once with it')
})

t.test('redis: events trimmed under a slow reader are reported, not skipped', async (t) => {
  const c = await openRedis(t, { maxEvents: 1 })
  const feed = c.share({ id: 's', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' })
  // One event per tick, one entry each; MINID ~ trims whole nodes: write enough that the first ones surely go.
  for (let id = 1; id <= 300; id++) {
    feed.append(id, '{}')
    await new Promise((resolve) => setImmediate(resolve))
  }
  await until(async () => ((await c.find('s'))?.lastId === 300), 5000, '((await c.find(\'s\'))?.lastId === 300)')
  const found = await c.find('s') as RemoteStream
  t.ok(found.firstId > 1, `the oldest events were trimmed (first kept: ${found.firstId})`)
  const follow = async (): Promise<void> => { for await (const e of found.follow(0, new AbortController().signal)) t.fail(`got ${e.id}`) }
  await t.rejects(follow(), /trimmed/)
})

t.test('redis: the events of one tick are one entry, replayed one by one from any cursor inside it', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const runner = await openRedis(t, { keyPrefix: prefix })
  const reader = await openRedis(t, { keyPrefix: prefix })
  const feed = runner.share({ id: 'tick', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' })
  for (let id = 1; id <= 5; id++) feed.append(id, `{"n":${id}}`)
  await new Promise((resolve) => setImmediate(resolve))
  feed.append(6, '{"n":6}')
  feed.end()
  const raw = new Redis(REDIS_URL)
  t.teardown(() => raw.disconnect())
  await until(async () => (await reader.find('tick'))?.ended === true, 5000, 'the stream to end in Redis')
  t.equal(await raw.xlen(`${prefix}stream:{tick}:events`), 3, 'two ticks of events and the end marker: three entries, not seven')
  t.match(await reader.find('tick'), { firstId: 1, lastId: 6 })
  const from = async (cursor: number): Promise<number[]> => {
    const ids: number[] = []
    for await (const e of (await reader.find('tick') as RemoteStream).follow(cursor, new AbortController().signal)) {
      t.equal(e.frame, `id: tick:${e.id}\ndata: {"n":${e.id}}\n\n`, 'each event with its own frame')
      ids.push(e.id)
    }
    return ids
  }
  t.same(await from(0), [1, 2, 3, 4, 5, 6])
  t.same(await from(3), [4, 5, 6], 'a cursor inside an entry skips what it already has')
  t.same(await from(5), [6])
})

t.test('redis: a tick of thousands of events is one entry, replayed from a cursor inside it', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const runner = await openRedis(t, { keyPrefix: prefix, maxEvents: 10_000 })
  const reader = await openRedis(t, { keyPrefix: prefix })
  const feed = runner.share({ id: 'big', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' })
  // Content events (kept as their text's JSON string) and others (their JSON line), alternating.
  const entry = (id: number): string => (id % 2 === 0 ? contentLiteral(`line ${id}\n{"x":1}`) : `{"n":${id},"text":"a\\nb"}`)
  const frame = (id: number): string => (id % 2 === 0
    ? `id: big:${id}\ndata: {"chunk_type":"content","content":"line ${id}\\n{\\"x\\":1}","tool_call":null,"memories_count":null}\n\n`
    : `id: big:${id}\ndata: {"n":${id},"text":"a\\nb"}\n\n`)
  for (let id = 1; id <= 5000; id++) feed.append(id, entry(id))
  feed.end()
  await until(async () => (await reader.find('big'))?.ended === true, 5000, 'the stream to end in Redis')
  const raw = new Redis(REDIS_URL)
  t.teardown(() => raw.disconnect())
  t.equal(await raw.xlen(`${prefix}stream:{big}:events`), 2, 'one entry and the end marker')
  t.match(await reader.find('big'), { firstId: 1, lastId: 5000 })
  const ids: number[] = []
  for await (const e of (await reader.find('big') as RemoteStream).follow(4090, new AbortController().signal)) {
    t.equal(e.frame, frame(e.id))
    ids.push(e.id)
  }
  t.same(ids, Array.from({ length: 910 }, (_, i) => 4091 + i), 'from a cursor inside the entry to the last event')
})

t.test('redis: entries written one frame per field (as earlier versions did) are read the same way', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const runner = await openRedis(t, { keyPrefix: prefix })
  const reader = await openRedis(t, { keyPrefix: prefix })
  runner.share({ id: 'old', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x', findableAtOnce: true })
  const raw = new Redis(REDIS_URL)
  t.teardown(() => raw.disconnect())
  const events = `${prefix}stream:{old}:events`
  await raw.xadd(events, '0-3', 'f', 'id: old:1\n\n', 'f', 'id: old:2\n\n', 'f', 'id: old:3\n\n')
  await raw.xadd(events, '0-4', 'f', 'id: old:4\n\n')
  await raw.xadd(events, '1-0', 'end', '1')
  await until(async () => (await reader.find('old'))?.ended === true, 5000, 'the stream to be found')
  t.match(await reader.find('old'), { firstId: 1, lastId: 4, ended: true })
  const frames: string[] = []
  for await (const e of (await reader.find('old') as RemoteStream).follow(1, new AbortController().signal)) frames.push(`${e.id}=${e.frame}`)
  t.same(frames, ['2=id: old:2\n\n', '3=id: old:3\n\n', '4=id: old:4\n\n'])
})

t.test('redis: events not yet written when the coordinator closes are written before it quits', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const runner = await openRedis(t, { keyPrefix: prefix }) // its teardown closes it again: a no-op
  const reader = await openRedis(t, { keyPrefix: prefix })
  const feed = runner.share({ id: 'closing', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' })
  feed.append(1, '{}')
  feed.end()
  await runner.close() // in the same iteration: the writes were still due
  t.match(await reader.find('closing'), { firstId: 1, lastId: 1, ended: true })
})

t.test('redis: unreachable Redis refuses new slots with CoordinatorUnavailableError', async (t) => {
  // A port with nothing behind it: take one, then free it.
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
  const errors: unknown[] = []
  const outages: Array<[string, unknown]> = []
  const c = await openRedis(t, { url: `redis://127.0.0.1:${port}`, onError: (err) => errors.push(err), onOutage: (state, err) => outages.push([state, err]) })
  t.equal(outages.length, 1, 'the failed connect was reported as an outage')
  await t.rejects(c.acquire('t'), CoordinatorUnavailableError)
  await t.rejects(c.find('s'), CoordinatorUnavailableError)
  await t.rejects(c.cancel('s'), CoordinatorUnavailableError)
  await t.rejects(c.ping())
  const feed = c.share({ id: 's', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' })
  feed.append(1, 'x')
  feed.end()
  await sleep(100)
  t.equal(outages.length, 1, 'said once per outage, not per request, stream or event')
  t.match(outages[0], ['down', /closed|ECONNREFUSED|writeable/], 'with the outage itself, not a wrapper')
  t.same(errors, [], 'an outage is no unexpected error')
})

t.test('redis: leases lost with Redis\' data are written again by the next renewal, so the limits hold again', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const c = await openRedis(t, { keyPrefix: prefix, leaseTtlMs: 300 })
  const held = [leaseOf(await c.acquire('t')), leaseOf(await c.acquire('t'))]
  const raw = new Redis(REDIS_URL)
  t.teardown(() => { raw.disconnect() })
  await raw.del(`${prefix}{limits}:all`, `${prefix}{limits}:tenant:t`) // as a restart without persistence would
  await until(async () => await raw.zcard(`${prefix}{limits}:tenant:t`) === 2, 5000, 'the running streams\' leases are back')
  t.same(await c.acquire('t'), { ok: false, scope: 'tenant', limit: 2 }, 'and count against the limit again')
  held[0]?.release()
  await sleep(250)
  t.equal(await raw.zcard(`${prefix}{limits}:tenant:t`), 1, 'a released lease is not renewed back')
})


t.test('redis: the slots freed by one callback go in one command per tenant (at most 1,000 leases each), and before any later acquire', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const c = await openRedis(t, { keyPrefix: prefix, maxPerTenant: 1500, maxTotal: 1003 })
  const many = await Promise.all(Array.from({ length: 1001 }, async () => leaseOf(await c.acquire('t'))))
  const few = [leaseOf(await c.acquire('u')), leaseOf(await c.acquire('u'))]
  const raw = new Redis(REDIS_URL)
  const monitor = await raw.monitor()
  t.teardown(() => { monitor.disconnect(); raw.disconnect() })
  const removals: string[] = []
  monitor.on('monitor', (_time: string, args: string[]) => { if (args[0]?.toLowerCase() === 'zrem' && args[1]?.startsWith(prefix) === true) removals.push(args[1].slice(prefix.length)) })
  for (const lease of [...many, ...few]) lease.release()
  // The global set is full until the releases are in; this acquire, in the same turn, sends them first.
  const next = leaseOf(await c.acquire('u'))
  t.equal(await raw.zcard(`${prefix}{limits}:all`), 1, 'only the new lease is held')
  t.equal(await raw.zcard(`${prefix}{limits}:tenant:t`), 0)
  await until(async () => removals.length === 6, 5000, 'the removals are seen')
  t.same(removals.sort(), ['{limits}:all', '{limits}:all', '{limits}:all', '{limits}:tenant:t', '{limits}:tenant:t', '{limits}:tenant:u'],
    '1,001 leases of one tenant in two commands, two of another in one')
  next.release()
  await until(async () => await raw.zcard(`${prefix}{limits}:all`) === 0, 5000, 'a release on its own goes out by itself, a turn later')
})


t.test('redis: a stream\'s keys expire with its lifetime while it runs and with the resume TTL once it ended; a release frees both lease entries', async (t) => {
  const prefix = `test:${randomBytes(6).toString('hex')}:`
  const c = await openRedis(t, { keyPrefix: prefix, maxDurationMs: 40_000, resumeTtlMs: 5_000 })
  const raw = new Redis(REDIS_URL)
  t.teardown(() => { raw.disconnect() })
  const lease = leaseOf(await c.acquire('t'))
  t.equal(await raw.zcard(`${prefix}{limits}:all`), 1)
  t.equal(await raw.zcard(`${prefix}{limits}:tenant:t`), 1)
  const feed = c.share({ id: 'ttl', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x', leaseId: lease.id })
  feed.append(1, 'id: ttl:1\ndata: {}\n\n')
  const [meta, events] = [`${prefix}stream:{ttl}:meta`, `${prefix}stream:{ttl}:events`]
  await until(async () => await raw.exists(events) === 1, 5000, 'the first event is in Redis')
  for (const key of [meta, events]) {
    const ttl = await raw.pttl(key)
    t.ok(ttl > 40_000 && ttl <= 45_000, `${key.slice(prefix.length)} lives for the stream's bound plus the resume TTL while it runs (${ttl} ms)`)
  }
  t.match(await raw.hgetall(meta), { org: 'o', user: 'u', agent: 'a', lease: lease.id })
  feed.end()
  await until(async () => (await c.find('ttl'))?.ended === true, 5000, 'the end marker is in Redis')
  for (const key of [meta, events]) {
    const ttl = await raw.pttl(key)
    t.ok(ttl > 0 && ttl <= 5_000, `${key.slice(prefix.length)} lives only as long as a resume may come once it ended (${ttl} ms)`)
  }
  lease.release()
  await until(async () => await raw.zcard(`${prefix}{limits}:tenant:t`) === 0, 5000, 'the tenant entry is gone')
  t.equal(await raw.zcard(`${prefix}{limits}:all`), 0, 'and the global one with it')
  // A short turn: its first events, its meta and its end in one call.
  const short = c.share({ id: 'short', orgId: 'o', userId: 'u', agentId: 'a', resumeToken: 'x' })
  short.append(1, 'id: short:1\ndata: {}\n\n')
  short.end()
  await until(async () => (await c.find('short'))?.ended === true, 5000, 'the short stream is in Redis, ended')
  t.match(await raw.hgetall(`${prefix}stream:{short}:meta`), { org: 'o', user: 'u', agent: 'a' })
  for (const key of [`${prefix}stream:{short}:meta`, `${prefix}stream:{short}:events`]) {
    const ttl = await raw.pttl(key)
    t.ok(ttl > 0 && ttl <= 5_000, `${key.slice(prefix.length)}, written and ended in one call, lives only as long as a resume may come (${ttl} ms)`)
  }
})
