// A chat POST sent again never starts a second turn: with Last-Event-ID it resumes the stream
// the id names; with an Idempotency-Key it attaches to the turn the key started. Each case runs
// on one instance and across two instances sharing PostgreSQL and Redis.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ServerOptionsInput } from '../../lib/config.js'
import { LocalCoordinator } from '../../lib/coord/local.js'
import { startApp, type TestApp } from '../helpers/server.js'
import { freshSchema } from '../helpers/postgres.js'
import { REDIS_URL } from '../helpers/redis.js'
import { seqOf, StreamClient } from '../helpers/sse-client.js'
import { FakeOpenAI, startUpstream } from '../helpers/upstream.js'
import { until, within } from '../helpers/settle.js'

const TOKENS = Array.from({ length: 6 }, (_, i) => `w${i} `)

interface Setup { a: TestApp, b: TestApp, upstream: FakeOpenAI, agentId: string }

const layouts: Record<string, (t: Test) => Promise<Setup>> = {
  'one instance': async (t) => {
    const upstream = await startUpstream(t)
    const a = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'k', openaiBaseUrl: upstream.url, streamDetachGraceMs: 5000, streamKeepaliveMs: 60_000 })
    return { a, b: a, upstream, agentId: await a.createAgent('org-a') }
  },
  'two instances on Redis': async (t) => {
    const upstream = await startUpstream(t)
    const shared: ServerOptionsInput = {
      databaseUrl: await freshSchema(t),
      redisUrl: REDIS_URL,
      redisKeyPrefix: `test:${randomBytes(6).toString('hex')}:`,
      llmProvider: 'openai',
      openaiApiKey: 'k',
      openaiBaseUrl: upstream.url,
      streamDetachGraceMs: 5000,
      streamKeepaliveMs: 60_000
    }
    const a = await startApp(t, shared)
    const b = await startApp(t, shared)
    return { a, b, upstream, agentId: await a.createAgent('org-a') }
  }
}

async function historyOf (app: TestApp, agentId: string): Promise<Array<{ role: string, content: string }>> {
  return (await app.call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history`)).body.data as Array<{ role: string, content: string }>
}

const chat = (app: TestApp, agentId: string, body: unknown, headers: Record<string, string>, org = 'org-a', sub = 'user-1'): StreamClient =>
  new StreamClient(`${app.url}/api/v1/agents/${agentId}/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${app.token(org, sub)}`, ...headers },
    body: JSON.stringify(body)
  })

for (const [layout, setup] of Object.entries(layouts)) {
  t.test(`${layout}: a POST sent again with Last-Event-ID continues its stream`, async (t) => {
    const { a, b, upstream, agentId } = await setup(t)
    upstream.script = { tokens: TOKENS, hangAfterTokens: 3 }
    const first = a.stream('org-a', agentId, { message: 'go' })
    await first.untilEvents(4)
    first.destroy()
    const lastId = first.events.at(-1)?.id as string
    const again = b.stream('org-a', agentId, { message: 'go' }, { headers: { 'last-event-id': lastId } })
    // Nothing to replay yet: the headers still come at once (not with the first keep-alive,
    // a minute away here), and the rest follows live.
    await within(again.response(), 5000, 'the headers of a resume with nothing to replay')
    upstream.resume()
    await again.ended
    t.equal(again.status, 200)
    t.same([...first.events, ...again.events].map((e) => seqOf(e.id)), [...first.events, ...again.events].map((_, i) => i + 1), 'no gap, no duplicate')
    t.equal(again.last()?.chunk_type, 'done')
    t.equal(first.text() + again.text(), TOKENS.join(''))
    t.equal(upstream.requests.length, 1, 'the model was called once')
    t.same((await historyOf(a, agentId)).map((m) => m.role), ['user', 'assistant'], 'one turn stored')
    t.equal(again.retry, 1000, 'retry rides in the resumed stream too')

    // Nothing more after the last event: 204, so a reconnecting client stops.
    const after = b.stream('org-a', agentId, { message: 'go' }, { headers: { 'last-event-id': again.events.at(-1)?.id as string } })
    await after.ended
    t.equal(after.status, 204)

    const id = String(first.events[0]?.json.stream_id)
    const refused: Array<[string, StreamClient, number, string]> = [
      ['unknown stream', b.stream('org-a', agentId, { message: 'go' }, { headers: { 'last-event-id': 'stream-nope:3' } }), 404, 'NOT_FOUND'],
      ['another org', b.stream('org-b', agentId, { message: 'go' }, { headers: { 'last-event-id': lastId } }), 404, 'NOT_FOUND'],
      ['another agent', b.stream('org-a', 'agent-other', { message: 'go' }, { headers: { 'last-event-id': lastId } }), 404, 'NOT_FOUND'],
      ['a bare position names no stream', b.stream('org-a', agentId, { message: 'go' }, { headers: { 'last-event-id': '3' } }), 400, 'BAD_REQUEST'],
      ['not an event id', b.stream('org-a', agentId, { message: 'go' }, { headers: { 'last-event-id': 'abc' } }), 400, 'BAD_REQUEST'],
      ['ahead of the stream', b.stream('org-a', agentId, { message: 'go' }, { headers: { 'last-event-id': `${id}:999` } }), 400, 'BAD_REQUEST']
    ]
    for (const [name, c, status, code] of refused) {
      const body = await c.json()
      t.equal(c.status, status, name)
      t.equal(body.code, code, name)
    }
    const otherUser = new StreamClient(`${b.url}/api/v1/agents/${agentId}/chat/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${b.token('org-a', 'user-2')}`, 'last-event-id': lastId },
      body: '{"message":"go"}'
    })
    t.equal((await otherUser.json()).code, 'NOT_FOUND', 'another user of the org')
    t.equal(upstream.requests.length, 1, 'none of them called the model')
    t.equal((await historyOf(a, agentId)).length, 2, 'none of them stored a turn')
  })

  t.test(`${layout}: two streams racing with one Idempotency-Key make one turn`, async (t) => {
    const { a, b, upstream, agentId } = await setup(t)
    upstream.script = { tokens: TOKENS, tokenDelayMs: 20 }
    const headers = { 'idempotency-key': 'turn-1' }
    const one = a.stream('org-a', agentId, { message: 'go' }, { headers })
    const two = b.stream('org-a', agentId, { message: 'go' }, { headers })
    await Promise.all([one.ended, two.ended])
    t.equal(one.status, 200)
    t.equal(two.status, 200)
    t.same(two.events.map((e) => e.data), one.events.map((e) => e.data), 'the same events, ids and all')
    t.same(two.events.map((e) => e.id), one.events.map((e) => e.id))
    t.equal(one.last()?.chunk_type, 'done')
    t.equal(upstream.requests.length, 1, 'the model was called once')
    t.same((await historyOf(a, agentId)).map((m) => m.role), ['user', 'assistant'])

    const late = b.stream('org-a', agentId, { message: 'go' }, { headers })
    await late.ended
    t.same(late.events.map((e) => e.data), one.events.map((e) => e.data), 'later, the key replays the turn')

    const reused = b.stream('org-a', agentId, { message: 'something else' }, { headers })
    t.equal((await reused.json()).code, 'IDEMPOTENCY_KEY_REUSED')
    t.equal(reused.status, 422, 'the same key with another body')
    const onChat = chat(b, agentId, { message: 'go' }, headers)
    await onChat.ended
    t.equal(onChat.status, 422, 'a stream key is not a one-shot key')
    const otherUser = b.stream('org-a', agentId, { message: 'go' }, { headers: { ...headers, authorization: `Bearer ${b.token('org-a', 'user-2')}` } })
    await otherUser.ended
    t.equal(otherUser.status, 200)
    t.notSame(otherUser.events[0]?.json.stream_id, one.events[0]?.json.stream_id, "another user's same key is another key")
    t.equal(upstream.requests.length, 2)
  })

  t.test(`${layout}: one-shot chat with an Idempotency-Key answers the same JSON, waiting for a running turn`, async (t) => {
    const { a, b, upstream, agentId } = await setup(t)
    upstream.script = { tokens: TOKENS, tokenDelayMs: 30 }
    const headers = { 'idempotency-key': 'once' }
    const first = chat(a, agentId, { message: 'go' }, headers)
    await until(() => upstream.requests.length === 1, 5000, 'the first turn to be running')
    const second = chat(b, agentId, { message: 'go' }, headers)
    const [one, two] = await Promise.all([first.json(), second.json()])
    t.equal(first.status, 200)
    t.equal(second.status, 200)
    t.same(two, one, 'the very same answer')
    t.equal((one.data as { content: string }).content, TOKENS.join(''))
    t.equal(upstream.requests.length, 1)
    t.equal((await historyOf(a, agentId)).length, 2)
  })

  t.test(`${layout}: a key whose turn failed before it started is given up, so a retry runs; once it started the key keeps it`, async (t) => {
    const { a, b, upstream, agentId } = await setup(t)
    const headers = { 'idempotency-key': 'retry-me' }
    upstream.queue.push({ status: 500 })
    const failed = a.stream('org-a', agentId, { message: 'go' }, { headers })
    await failed.ended
    t.equal(failed.status, 502)
    const retried = b.stream('org-a', agentId, { message: 'go' }, { headers })
    await retried.ended
    t.equal(retried.status, 200)
    t.equal(retried.last()?.chunk_type, 'done')
    const failedChat = chat(a, agentId, { message: 'go' }, { 'idempotency-key': 'chat-retry' })
    upstream.queue.push({ status: 500 })
    await failedChat.ended
    t.equal(failedChat.status, 502)
    const retriedChat = chat(b, agentId, { message: 'go' }, { 'idempotency-key': 'chat-retry' })
    await retriedChat.ended
    t.equal(retriedChat.status, 200)

    // Once the stream began, the key keeps its turn whatever the ending, a retryable error too.
    upstream.queue.push({ tokens: TOKENS, tokenDelayMs: 20, dieAfterTokens: 2 })
    const cut = a.stream('org-a', agentId, { message: 'again' }, { headers: { 'idempotency-key': 'cut' } })
    await cut.ended
    t.equal(cut.status, 200)
    t.match(cut.last(), { chunk_type: 'error', code: 'upstream_error', retryable: true })
    const requests = upstream.requests.length
    const replayed = b.stream('org-a', agentId, { message: 'again' }, { headers: { 'idempotency-key': 'cut' } })
    await replayed.ended
    t.same(replayed.events.map((e) => e.data), cut.events.map((e) => e.data), 'the same key replays that turn, its error included')
    t.equal(upstream.requests.length, requests, 'and runs nothing')
    const fresh = b.stream('org-a', agentId, { message: 'again' }, { headers: { 'idempotency-key': 'cut-2' } })
    await fresh.ended
    t.equal(fresh.last()?.chunk_type, 'done', 'a new key runs the turn again')
  })
}

t.test('an Idempotency-Key that is not 1 to 255 visible characters is refused', async (t) => {
  const { stream, createAgent } = await startApp(t)
  const agentId = await createAgent('org-a')
  for (const key of ['', 'a b', 'x'.repeat(256)]) {
    const c = stream('org-a', agentId, { message: 'go' }, { headers: { 'idempotency-key': key === '' ? ' ' : key } })
    t.equal((await c.json()).code, 'BAD_REQUEST', `key of ${key.length} characters`)
    t.equal(c.status, 400)
  }
})

/** A coordinator whose key writes fail as a lost Redis would make them, counting claims. */
class LossyKeys extends LocalCoordinator {
  claims = 0
  override async claimKey (key: string, value: string, ttlMs: number): Promise<string | null> {
    this.claims++
    return await super.claimKey(key, value, ttlMs)
  }

  override async setKey (): Promise<void> { throw new Error('setKey lost') }
  override async releaseKey (): Promise<void> { throw new Error('releaseKey lost') }
}

t.test('a key whose holder never says what it became: the turn still runs, waiters stop at their bound with 409', async (t) => {
  const coordinator = new LossyKeys({ maxPerTenant: 10, maxTotal: 10 })
  const errors: unknown[] = []
  const { stream, createAgent } = await startApp(t, { streamMaxDurationMs: 1000, streamFirstTokenTimeoutMs: 200 }, { coordinator, onError: (err) => errors.push(err) })
  const agentId = await createAgent('org-a')
  const headers = { 'idempotency-key': 'lossy' }
  const first = stream('org-a', agentId, { message: 'go' }, { headers })
  await first.ended
  t.equal(first.last()?.chunk_type, 'done', 'the turn ran although its key could not be settled')
  t.match(errors, [{ message: 'setKey lost' }], 'the failure was reported, once')

  const waiter = stream('org-a', agentId, { message: 'go' }, { headers })
  const body = await waiter.json()
  t.equal(waiter.status, 409, 'no answer ever came for the key: 409 after the longest a turn may run')
  t.equal(body.code, 'CONFLICT')

  // A waiter that leaves stops asking.
  const before = coordinator.claims
  const leaving = stream('org-a', agentId, { message: 'go' }, { headers })
  await until(() => coordinator.claims > before + 3, 2000, 'the waiter to poll')
  leaving.destroy()
  await leaving.ended
  await sleep(100)
  const claims = coordinator.claims
  await sleep(200)
  t.equal(coordinator.claims, claims, 'no claim after the client left')

  const missing = stream('org-a', 'agent-missing', { message: 'go' }, { headers: { 'idempotency-key': 'no-agent' } })
  t.equal((await missing.json()).code, 'NOT_FOUND', 'a failed turn still answers its own error')
  t.match(errors.at(-1), { message: 'releaseKey lost' }, 'when giving its key up fails too')
})
