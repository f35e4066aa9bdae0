import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ServerOptionsInput } from '../../lib/config.js'
import type { ServerDeps } from '../../lib/server.js'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { LocalCoordinator } from '../../lib/coord/local.js'
import { startApp, type TestApp } from '../helpers/server.js'
import { freshSchema } from '../helpers/postgres.js'
import { REDIS_URL } from '../helpers/redis.js'
import { within, until } from '../helpers/settle.js'
import { StreamClient, request, seqOf, type RequestOptions } from '../helpers/sse-client.js'
import { FakeOpenAI, startUpstream } from '../helpers/upstream.js'

/*
 * Two instances in this process, sharing one Redis and one PostgreSQL schema as a deployment
 * behind a load balancer would. (test/e2e/cluster.test.ts does the same with separate processes.)
 */

const TOKENS = Array.from({ length: 10 }, (_, i) => `w${i} `)

interface Pair {
  a: TestApp
  b: TestApp
  upstream: FakeOpenAI
  agentId: string
  resumeOn: (app: TestApp, id: string, opts?: RequestOptions & { query?: string, org?: string, sub?: string }) => StreamClient
}

async function pair (t: Test, options: ServerOptionsInput = {}, redisUrl = REDIS_URL, bDeps: ServerDeps = {}): Promise<Pair> {
  const upstream = await startUpstream(t)
  const shared: ServerOptionsInput = {
    databaseUrl: await freshSchema(t),
    redisUrl,
    redisKeyPrefix: `test:${randomBytes(6).toString('hex')}:`,
    llmProvider: 'openai',
    openaiApiKey: 'k',
    openaiBaseUrl: upstream.url,
    streamDetachGraceMs: 2000,
    ...options
  }
  const a = await startApp(t, shared)
  const b = await startApp(t, shared, bDeps)
  const agentId = await a.createAgent('org-a')
  const resumeOn: Pair['resumeOn'] = (app, id, opts = {}) => new StreamClient(`${app.url}/api/v1/streams/${id}${opts.query ?? ''}`, {
    method: 'GET',
    headers: opts.query?.includes('resume_token') === true ? { ...opts.headers } : { authorization: `Bearer ${app.token(opts.org ?? 'org-a', opts.sub)}`, ...opts.headers }
  })
  return { a, b, upstream, agentId, resumeOn }
}

const startOf = (c: StreamClient): { stream_id: string, resume_token: string } => c.events[0]?.json as { stream_id: string, resume_token: string }

t.test('a stream started on A resumes on B after its client dropped: no gap, no duplicate', async (t) => {
  const { a, b, upstream, agentId, resumeOn } = await pair(t, { streamDetachGraceMs: 400 })
  upstream.script = { tokens: TOKENS, hangAfterTokens: 3 }
  const first = a.stream('org-a', agentId, { message: 'go' })
  await first.untilEvents(4)
  first.destroy()
  await first.ended
  const { stream_id: id } = startOf(first)
  const second = resumeOn(b, id, { headers: { 'last-event-id': first.events.at(-1)?.id as string } })
  await second.response()
  t.equal(second.status, 200)
  t.equal(second.headers['content-type'], 'text/event-stream; charset=utf-8')
  // Longer than A's grace period: B's reader keeps the generation on A alive.
  await sleep(1000)
  upstream.resume()
  await second.ended
  const ids = [...first.events, ...second.events].map((e) => seqOf(e.id))
  t.same(ids, ids.map((_, i) => i + 1), 'ids 1..n exactly once across both instances')
  t.equal(first.text() + second.text(), TOKENS.join(''), 'the whole reply')
  t.equal(second.last()?.chunk_type, 'done', 'generation on A was not given up while B read')

  // Ended: B replays all of it, says 204 when nothing is left, 400 when the cursor is ahead.
  const replay = resumeOn(b, id)
  await replay.ended
  t.same(replay.events.map((e) => seqOf(e.id)), ids)
  const lastId = String(ids.at(-1))
  const nothing = resumeOn(b, id, { headers: { 'last-event-id': lastId } })
  await nothing.ended
  t.equal(nothing.status, 204)
  const ahead = resumeOn(b, id, { headers: { 'last-event-id': String(ids.length + 5) } })
  t.match(await ahead.json(), { code: 'BAD_REQUEST', details: { last_event_id: ids.length } })
  // Cancelling a stream that ended elsewhere.
  const cancelled = await b.call('org-a', 'DELETE', `/api/v1/streams/${id}`)
  t.equal(cancelled.status, 404, 'an ended stream answers like an unknown one')
  t.equal(cancelled.body.code, 'NOT_FOUND')
})

t.test('on another instance a stream is still its own user\'s only', async (t) => {
  const { a, b, upstream, agentId, resumeOn } = await pair(t)
  upstream.script = { tokens: TOKENS }
  const first = a.stream('org-a', agentId, { message: 'go' })
  await first.ended
  const { stream_id: id, resume_token: token } = startOf(first)
  for (const [who, opts] of [
    ['another org', { org: 'org-b' }],
    ['another user of the org', { sub: 'user-2' }],
    ['a wrong resume token', { query: '?resume_token=' + 'x'.repeat(32) }]
  ] as const) {
    const c = resumeOn(b, id, opts)
    t.equal((await c.json()).code, 'NOT_FOUND', who)
  }
  const withToken = resumeOn(b, id, { query: `?resume_token=${token}` })
  await withToken.ended
  t.equal(withToken.events.length, first.events.length, 'the resume token opens it on any instance, without a bearer token')
  const { status } = await b.call('org-b', 'DELETE', `/api/v1/streams/${id}`)
  t.equal(status, 404, 'another org cannot cancel it either')
  t.equal((await b.call('org-a', 'GET', '/api/v1/streams/stream-unknown')).status, 404)
})

t.test('DELETE on B cancels the generation running on A', async (t) => {
  const { a, b, upstream, agentId } = await pair(t)
  upstream.script = { tokens: TOKENS, hangAfterTokens: 2 }
  const first = a.stream('org-a', agentId, { message: 'go' })
  await first.untilEvents(3)
  const { status } = await b.call('org-a', 'DELETE', `/api/v1/streams/${startOf(first).stream_id}`)
  t.equal(status, 204)
  await first.ended
  t.match(first.last(), { chunk_type: 'error', code: 'cancelled' }, 'A\'s client sees the cancel')
  await until(() => a.app.streams().length === 0, 5000, 'and A released the stream')
})

t.test('the per-tenant limit holds across instances', async (t) => {
  const { a, b, upstream, agentId } = await pair(t, { streamMaxPerTenant: 1 })
  upstream.script = { tokens: TOKENS, hangAfterTokens: 1 }
  const held = a.stream('org-a', agentId, { message: 'go' })
  await held.untilEvents(2)
  const refused = b.stream('org-a', agentId, { message: 'go' })
  t.equal((await refused.response()).status, 429)
  t.match(await refused.json(), { code: 'QUOTA_EXCEEDED', details: { scope: 'tenant', limit: 1 } })
  const otherTenant = await b.createAgent('org-b')
  const allowed = b.stream('org-b', otherTenant, { message: 'go' })
  await allowed.untilEvents(2)
  t.equal(allowed.status, 200, 'another tenant is not affected')
  upstream.script = { tokens: TOKENS }
  upstream.resume()
  await Promise.all([held.ended, allowed.ended])
  // The release reaches Redis a moment after the client saw the end.
  await until(async () => {
    const again = b.stream('org-a', agentId, { message: 'go' })
    await again.ended
    return again.last()?.chunk_type === 'done'
  }, 2000, 'the slot came back when the stream on A ended')
})

t.test('a reader on B that cannot keep up waits for the socket, then gets everything', async (t) => {
  const big = Array.from({ length: 40 }, (_, i) => `${String(i).padStart(3, '0')}${'x'.repeat(64 * 1024)}`)
  const { a, b, upstream, agentId } = await pair(t)
  upstream.script = { tokens: big }
  const first = a.stream('org-a', agentId, { message: 'go' })
  await first.ended
  const slow = new StreamClient(`${b.url}/api/v1/streams/${startOf(first).stream_id}`, {
    method: 'GET', headers: { authorization: `Bearer ${b.token('org-a')}` }
  })
  await slow.response()
  slow.res?.pause()
  await sleep(300)
  slow.res?.resume()
  await slow.ended
  t.equal(slow.text(), big.join(''), 'all of it, in order')
})

t.test('a reader on B that leaves mid-stream does not end the generation on A', async (t) => {
  const { a, b, upstream, agentId, resumeOn } = await pair(t)
  upstream.script = { tokens: TOKENS, hangAfterTokens: 3 }
  const first = a.stream('org-a', agentId, { message: 'go' })
  await first.untilEvents(4)
  first.destroy()
  const { stream_id: id } = startOf(first)
  const leaving = resumeOn(b, id, { headers: { 'last-event-id': '2' } })
  await leaving.untilEvents(2)
  leaving.destroy()
  await leaving.ended
  const back = resumeOn(b, id, { headers: { 'last-event-id': '4' } })
  await back.response()
  upstream.resume()
  await back.ended
  t.same(leaving.events.map((e) => seqOf(e.id)), [3, 4])
  t.equal(back.last()?.chunk_type, 'done', 'the generation went on after the first remote reader left')
  t.equal(back.text(), TOKENS.slice(3).join(''))
})

t.test('a coordinator that fails unexpectedly is a 500 and a report, never a hang', async (t) => {
  const errors: unknown[] = []
  class BrokenCoordinator extends LocalCoordinator {
    override async acquire (): Promise<never> { throw new Error('broken acquire') }
    override async find (): Promise<never> { throw new Error('broken find') }
  }
  const app = await startApp(t, {}, { coordinator: new BrokenCoordinator({ maxPerTenant: 1, maxTotal: 1 }), onError: (err) => errors.push(err) })
  const agentId = await app.createAgent('org-a')
  const refused = app.stream('org-a', agentId, { message: 'go' })
  t.match(await refused.json(), { code: 'INTERNAL_ERROR' })
  t.equal((await app.call('org-a', 'GET', '/api/v1/streams/stream-x')).status, 500)
  t.match(errors, [{ message: 'broken acquire' }, { message: 'broken find' }])
})

t.test('events trimmed from Redis are gone (410) on another instance', async (t) => {
  const { a, b, upstream, agentId, resumeOn } = await pair(t, { streamReplayMaxEvents: 1 })
  // Redis trims approximately (MINID ~): whole nodes of its stream, 4 KB each by default. Some
  // 30 KB of events fill several, so the oldest surely go.
  upstream.script = { tokens: Array.from({ length: 300 }, (_, i) => `${i} ${'x'.repeat(100)}`) }
  const first = a.stream('org-a', agentId, { message: 'go' })
  await first.ended
  const late = resumeOn(b, startOf(first).stream_id, { headers: { 'last-event-id': '1' } })
  t.match(await late.json(), { code: 'GONE' })
})

/** A Redis of this test's own, on a free port, that the test can stop and start again. */
async function privateRedis (t: Test): Promise<{ url: string, stop: () => Promise<void>, start: () => Promise<void> }> {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
  let proc: ChildProcess | undefined
  const start = async (): Promise<void> => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    const url = `redis://127.0.0.1:${port}`
    await until(async () => await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true) }).on('error', () => resolve(false))
    }), 2000, `redis-server up on ${url}`)
  }
  const stop = async (): Promise<void> => {
    const p = proc as ChildProcess
    p.kill('SIGKILL')
    await once(p, 'exit')
  }
  await start()
  t.teardown(async () => { if (proc?.exitCode === null && proc.signalCode === null) await stop() })
  return { url: `redis://127.0.0.1:${port}`, stop, start }
}

t.test('Redis goes away: new streams get 503, running ones finish, and service returns with Redis', async (t) => {
  const redis = await privateRedis(t)
  const logs: Array<{ level: number, msg: string }> = []
  const sink = new Writable({ write (chunk, _enc, done) { for (const l of String(chunk).trim().split('\n')) logs.push(JSON.parse(l)); done() } })
  const { a, b, upstream, agentId } = await pair(t, {}, redis.url, { logger: pino({ level: 'info' }, sink) })
  upstream.script = { tokens: TOKENS, hangAfterTokens: 3 }
  const running = a.stream('org-a', agentId, { message: 'go' })
  await running.untilEvents(4)
  const remoteReader = new StreamClient(`${b.url}/api/v1/streams/${startOf(running).stream_id}`, {
    method: 'GET', headers: { authorization: `Bearer ${b.token('org-a')}` }
  })
  await remoteReader.untilEvents(4)
  await redis.stop()
  await remoteReader.ended
  t.notOk(remoteReader.types().includes('done'), 'a reader following through Redis is cut, so its client reconnects elsewhere')

  const refused = b.stream('org-a', agentId, { message: 'go' })
  await refused.response()
  t.equal(refused.status, 503)
  t.equal(refused.headers['retry-after'], '1')
  t.match(await refused.json(), { code: 'SERVICE_UNAVAILABLE', message: /Redis/, details: { dependency: 'redis' } })
  t.equal((await b.call('org-a', 'GET', `/api/v1/streams/${startOf(running).stream_id}`)).status, 503, 'a stream of another instance cannot be looked up')
  t.equal((await b.call('org-a', 'DELETE', `/api/v1/streams/${startOf(running).stream_id}`)).status, 503)
  const ready = await request(`${b.url}/readyz`, { method: 'GET' })
  t.equal(ready.status, 503, 'not ready without its coordinator')

  upstream.resume()
  await running.ended
  t.equal(running.last()?.chunk_type, 'done', 'the running stream finished')
  t.equal(running.text(), TOKENS.join(''))

  await redis.start()
  upstream.script = { tokens: TOKENS }
  await until(async () => {
    const c = b.stream('org-a', agentId, { message: 'again' })
    await c.ended
    return c.last()?.chunk_type === 'done'
  }, 2000, 'streams are served again once Redis is back')
  t.match(await (await request(`${b.url}/readyz`, { method: 'GET' })).json(), { status: 'ready', store: 'postgres', coordinator: 'redis' })
  const said = logs.filter((l) => l.msg.startsWith('redis')).map((l) => [l.level, l.msg])
  t.same(said, [[40, 'redis unreachable: new streams, remote resume and cancel answer 503 until it is back'], [30, 'redis reachable again']],
    'the outage is logged once at warn, the recovery once at info')
  t.same(logs.filter((l) => l.level >= 50), [], 'and no error lines for the expected 503s')
})

t.test('a reader on B of a stream whose instance A stopped renewing its leases (as a dead one) ends with producer_lost', async (t) => {
  const { a, b, upstream, agentId, resumeOn } = await pair(t, { redisLeaseTtlMs: 400 })
  upstream.script = { tokens: TOKENS, hangAfterTokens: 3 }
  const running = a.stream('org-a', agentId, { message: 'go' })
  await running.untilEvents(4)
  const id = startOf(running).stream_id
  const follower = resumeOn(b, id, { headers: { 'last-event-id': `${id}:4` } })
  await follower.response()
  await a.app.coordinator.close() // stops renewing, releases nothing: what a killed process leaves
  await within(follower.ended, 5000, 'the follower on B to end')
  t.match(follower.last(), { chunk_type: 'error', code: 'producer_lost', content: 'The instance running this stream stopped' })
  t.equal(follower.events.at(-1)?.id, `${id}:5`, 'numbered after the last event it had')
  upstream.resume()
})

t.test('an agent changed or deleted on A is dropped from B\'s cache at once, not after AGENT_CACHE_TTL_MS', async (t) => {
  const { a, b, upstream, agentId } = await pair(t, { agentCacheTtlMs: 600_000 })
  upstream.script = { tokens: ['ok'] }
  const systemOf = (i: number): unknown => upstream.requests[i]?.body.messages.find((m) => m.role === 'system' && m.content === 'You are a pirate.')
  await b.stream('org-a', agentId, { message: 'first' }).ended
  t.equal(systemOf(0), undefined, 'B read the agent, which has no system prompt yet (and keeps it for ten minutes)')
  const put = await a.call('org-a', 'PUT', `/api/v1/agents/${agentId}`, { system: 'You are a pirate.' })
  t.equal(put.status, 200)
  await until(async () => {
    const c = b.stream('org-a', agentId, { message: 'again' })
    await c.ended
    return systemOf(upstream.requests.length - 1) !== undefined
  }, 5000, 'B to use the updated agent')
  t.equal(upstream.requests.length <= 3, true, 'within a turn or two, not ten minutes')
  t.equal((await a.call('org-a', 'DELETE', `/api/v1/agents/${agentId}`)).status, 204)
  await until(async () => {
    const c = b.stream('org-a', agentId, { message: 'gone?' })
    await c.ended
    return c.status === 404
  }, 5000, 'B to refuse the deleted agent')
})

t.test('a memory added on A is in B\'s very next prompt, though B had read "no memories" with MEMORY_PRESENCE_TTL_MS at ten minutes', async (t) => {
  const { a, b, upstream, agentId } = await pair(t, { memoryPresenceTtlMs: 600_000 })
  upstream.script = { tokens: ['ok'] }
  const contextOf = (i: number): string | undefined => upstream.requests[i]?.body.messages.find((m) => m.role === 'system' && m.content.includes('<memories>'))?.content
  await b.stream('org-a', agentId, { message: 'what tea do I like?' }).ended
  t.equal(contextOf(0), undefined, 'B found no memories (and keeps that for ten minutes)')
  t.equal((await a.call('org-a', 'POST', '/api/v1/memories', { content: 'User likes green tea', agent_id: agentId })).status, 201)
  await until(async () => {
    await b.stream('org-a', agentId, { message: 'what tea do I like?' }).ended
    return contextOf(upstream.requests.length - 1)?.includes('User likes green tea') === true
  }, 5000, 'B to put the memory added on A in its prompt')
  t.equal(upstream.requests.length <= 3, true, 'within a turn or two, not ten minutes')
})
