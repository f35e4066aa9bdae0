import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { signToken } from '../../lib/auth/jwt.js'
import { SECRET } from '../helpers/server.js'
import { freshSchema } from '../helpers/postgres.js'
import { REDIS_URL } from '../helpers/redis.js'
import { within, until } from '../helpers/settle.js'
import { StreamClient, request, seqOf } from '../helpers/sse-client.js'
import { startUpstream } from '../helpers/upstream.js'
import { startServerProcess, type ServerProcess } from '../helpers/process.js'

/*
 * Three server processes on their own ports, sharing one Redis and one PostgreSQL schema:
 * what a deployment behind a load balancer looks like, minus the balancer.
 */

const LEASE_TTL_MS = 1500

type Instance = ServerProcess

async function startInstance (t: Test, env: Record<string, string>): Promise<Instance> {
  const instance = await startServerProcess(t, env)
  t.match(instance.output(), /store: postgres {2}coordinator: redis/, 'started on the shared back ends')
  return instance
}

const token = (org: string, sub = 'user-1'): string => signToken(SECRET, { org, sub, ttlMs: 60_000 })
const auth = (org: string): Record<string, string> => ({ authorization: `Bearer ${token(org)}`, 'content-type': 'application/json' })

function chat (instance: Instance, agentId: string, message: string): StreamClient {
  return new StreamClient(`${instance.url}/api/v1/agents/${agentId}/chat/stream`, {
    method: 'POST', headers: auth('org-a'), body: JSON.stringify({ message })
  })
}

async function call (instance: Instance, method: string, path: string, body?: unknown): Promise<{ status: number, json: Record<string, unknown> }> {
  const c = await request(instance.url + path, { method, headers: auth('org-a'), body: body === undefined ? undefined : JSON.stringify(body) })
  return { status: c.status, json: JSON.parse(c.raw) }
}

t.test('three instances behave as one', async (t) => {
  const upstream = await startUpstream(t)
  const env = {
    JWT_SECRET: SECRET,
    DATABASE_URL: await freshSchema(t),
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    REDIS_LEASE_TTL_MS: String(LEASE_TTL_MS),
    OPENAI_API_KEY: 'k',
    OPENAI_BASE_URL: upstream.url,
    STREAM_MAX_PER_TENANT: '2',
    STREAM_DETACH_GRACE_MS: '5000',
    SHUTDOWN_GRACE_MS: '0'
  }
  const [a, b, c] = await Promise.all([startInstance(t, env), startInstance(t, env), startInstance(t, env)]) as [Instance, Instance, Instance]
  const created = await call(a, 'POST', '/api/v1/agents', { name: 'shared agent' })
  t.equal(created.status, 201)
  const agentId = (created.json.data as { id: string }).id

  t.test('memories written through A are retrieved through C', async (t) => {
    const written = await call(a, 'POST', `/api/v1/agents/${agentId}/memories`, { content: 'The user keeps bees on the roof', user_id: 'user-1' })
    t.equal(written.status, 201)
    const found = await call(c, 'GET', `/api/v1/agents/${agentId}/memories/search?q=bees`)
    t.match(found.json.data, [{ content: 'The user keeps bees on the roof' }])
    upstream.script = { tokens: ['Bees', ' again'] }
    const turn = chat(c, agentId, 'what about my bees?')
    await turn.ended
    t.match(turn.events[0]?.json, { chunk_type: 'start', memories_retrieved: 1 })
    t.match(JSON.stringify(upstream.requests.at(-1)?.body.messages), /keeps bees on the roof/, 'the memory went into C\'s prompt')
  })

  t.test('the per-tenant limit holds whichever instance a stream hits', async (t) => {
    upstream.script = { tokens: ['a ', 'b ', 'c '], hangAfterTokens: 1 }
    const onA = chat(a, agentId, 'one')
    const onB = chat(b, agentId, 'two')
    await Promise.all([onA.untilEvents(2), onB.untilEvents(2)])
    for (const instance of [a, b, c]) {
      const third = chat(instance, agentId, 'three')
      t.equal((await third.response()).status, 429, `third stream refused on ${instance.url}`)
      t.match(await third.json(), { code: 'QUOTA_EXCEEDED', details: { scope: 'tenant', limit: 2 } })
    }

    t.test('a stream started on B resumes on C after its client dropped', async (t) => {
      onB.destroy()
      await onB.ended
      const id = (onB.events[0]?.json as { stream_id: string }).stream_id
      const resumed = new StreamClient(`${c.url}/api/v1/streams/${id}`, {
        method: 'GET', headers: { ...auth('org-a'), 'last-event-id': onB.events.at(-1)?.id as string }
      })
      await resumed.response()
      t.equal(resumed.status, 200)
      upstream.resume()
      await resumed.ended
      const ids = [...onB.events, ...resumed.events].map((e) => seqOf(e.id))
      t.same(ids, ids.map((_, i) => i + 1), 'ids continue exactly')
      t.equal(onB.text() + resumed.text(), 'a b c ')
      t.equal(resumed.last()?.chunk_type, 'done')
    })

    t.test('killing an instance mid-stream frees its slots within the lease TTL', async (t) => {
      await onA.ended // A's stream was resumed above with the others; start a held one again
      upstream.script = { tokens: ['x ', 'y '], hangAfterTokens: 1 }
      const held = [chat(a, agentId, 'held 1'), chat(a, agentId, 'held 2')]
      await Promise.all(held.map(async (s) => await s.untilEvents(2)))
      const refused = chat(c, agentId, 'refused')
      t.equal((await refused.response()).status, 429, 'both slots are held by A')
      await refused.ended
      // A reader on B follows one of A's streams through Redis.
      const heldId = (held[0]?.events[0]?.json as { stream_id: string }).stream_id
      const follower = new StreamClient(`${b.url}/api/v1/streams/${heldId}`, { method: 'GET', headers: auth('org-a') })
      await follower.untilEvents(2)
      a.proc.kill('SIGKILL')
      await once(a.proc, 'exit')
      const killedAt = performance.now()
      const early = chat(c, agentId, 'right after the crash')
      t.equal((await early.response()).status, 429, 'a dead instance\'s leases still count until they expire')
      await early.ended
      upstream.script = { tokens: ['back'] }
      await until(async () => {
        const s = chat(c, agentId, 'after the crash')
        await s.ended
        return s.last()?.chunk_type === 'done'
      }, 5000, 'then the slots come back by themselves and C serves a new stream')
      t.comment(`slots came back ${Math.round(performance.now() - killedAt)} ms after the kill (lease TTL ${LEASE_TTL_MS} ms)`)

      // The reader on B learns that the producer died: one terminal event, not keep-alives until the keys expire.
      await within(follower.ended, LEASE_TTL_MS * 3, 'the follower on B to end')
      t.match(follower.last(), { chunk_type: 'error', code: 'producer_lost' }, 'the reader on B got a terminal event')
      t.equal(follower.types().filter((x) => x === 'error' || x === 'done').length, 1, 'exactly one')
      t.comment(`the reader on B ended ${Math.round(performance.now() - killedAt)} ms after the kill`)
      const later = new StreamClient(`${c.url}/api/v1/streams/${heldId}`, { method: 'GET', headers: { ...auth('org-a'), 'last-event-id': follower.events.at(-2)?.id as string } })
      await within(later.ended, 2000, 'a later resume to end at once')
      t.same(later.types(), ['error'], 'a later resume on C ends at once with the same terminal event')
      t.equal(later.events[0]?.data, follower.last() === undefined ? '' : follower.events.at(-1)?.data)
      const history = await call(c, 'GET', `/api/v1/agents/${agentId}/chat/history?limit=500`)
      t.ok((history.json.data as Array<{ content: string }>).some((m) => m.content === 'held 1'), 'history keeps what was stored')
    })
  })
})
