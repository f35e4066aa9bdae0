import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { signToken } from '../../lib/auth/jwt.js'
import { SqliteStore } from '../../lib/store/sqlite.js'
import { freshSchema } from '../helpers/postgres.js'
import { startServerProcess } from '../helpers/process.js'
import { SECRET, startAppWithUpstream } from '../helpers/server.js'
import { until, within } from '../helpers/settle.js'
import { StreamClient } from '../helpers/sse-client.js'

// Replies are stored in group commits (one transaction for every turn that finishes in one turn
// of the event loop); `done` must still only ever name a reply that is durable.

t.test('done waits for the reply\'s commit: with the messages table locked, the stream holds before memory_update and done', async (t) => {
  const databaseUrl = await freshSchema(t)
  const { stream, upstream, agentId, call } = await startAppWithUpstream(t, { databaseUrl })
  upstream.script = { tokens: ['held ', 'reply'], hangAfterTokens: 1 }
  const client = stream('org-a', agentId, { message: 'hi', session_id: 'locked' })
  await client.untilEvents(2) // start and the first token: the question is stored
  const locker = new pg.Client({ connectionString: databaseUrl })
  await locker.connect()
  t.teardown(async () => { await locker.end() })
  // SHARE mode blocks every INSERT into the table until this transaction ends.
  await locker.query('BEGIN')
  await locker.query('LOCK TABLE messages IN SHARE MODE')
  upstream.resume()
  await client.until((c) => c.events.filter((e) => e.json.chunk_type === 'content').length === 2)
  await sleep(300)
  t.same(client.types(), ['start', 'content', 'content'], 'the whole reply streamed, but no memory_update and no done while it cannot be stored')
  await locker.query('COMMIT')
  await within(client.ended, 5000, 'the stream to end once the reply is stored')
  t.equal(client.last()?.chunk_type, 'done')
  const history = await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=locked`)
  const reply = (history.body.data as Array<{ id: string, role: string, content: string }>).at(-1)
  t.match(reply, { role: 'assistant', content: 'held reply', id: client.last()?.message_id }, 'the reply done named is in history')
})

t.test('a process killed between commit batches loses no reply a client saw done for', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'agentmem-crash-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'agentmem.db')
  const server = await startServerProcess(t, { DATABASE_URL: `sqlite:${file}`, JWT_SECRET: SECRET, BUILTIN_TOKEN_DELAY_MS: '1', STREAM_MAX_PER_TENANT: '1000' })
  const headers = { authorization: `Bearer ${signToken(SECRET, { org: 'org-a', sub: 'user-1', ttlMs: 60_000 })}`, 'content-type': 'application/json' }
  const created = await fetch(`${server.url}/api/v1/agents`, { method: 'POST', headers, body: JSON.stringify({ name: 'crash' }) })
  const agentId = ((await created.json()) as { data: { id: string } }).data.id
  const acknowledged: string[] = []
  let killed = false
  // 40 clients running turns back to back until the process dies under them.
  const clients = Array.from({ length: 40 }, async (_, i) => {
    for (let n = 0; !killed; n++) {
      const c = new StreamClient(`${server.url}/api/v1/agents/${agentId}/chat/stream`, { method: 'POST', headers, body: JSON.stringify({ message: `client ${i} turn ${n} says a few words` }) })
      await c.ended
      const last = c.last()
      if (last?.chunk_type === 'done') acknowledged.push(last.message_id as string)
    }
  })
  await until(() => acknowledged.length >= 200, 20_000, '200 replies acknowledged')
  server.proc.kill('SIGKILL')
  killed = true
  await server.exited
  await Promise.all(clients)
  const store = new SqliteStore(file)
  t.teardown(() => store.close())
  const stored = new Set((await store.listMessages('org-a', agentId, { limit: 100_000 })).map((m) => m.id))
  const lost = acknowledged.filter((id) => !stored.has(id))
  t.ok(acknowledged.length >= 200, `${acknowledged.length} replies acknowledged with done before the kill`)
  t.same(lost, [], 'every one of them is in the database after the crash')
})
