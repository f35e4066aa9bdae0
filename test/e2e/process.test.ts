import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { signToken } from '../../lib/auth/jwt.js'
import { SECRET } from '../helpers/server.js'
import { startServerProcess, type ServerProcess } from '../helpers/process.js'
import { StreamClient, request } from '../helpers/sse-client.js'
import { until } from '../helpers/settle.js'

/*
 * The server as `npm start` runs it, in a process of its own with its SQLite file on disk,
 * stopped the two ways production stops it: SIGTERM from an orchestrator, and kill -9.
 */

const auth = { authorization: `Bearer ${signToken(SECRET, { org: 'org-a', sub: 'user-1', ttlMs: 600_000 })}`, 'content-type': 'application/json' }
const LONG = Array.from({ length: 100 }, (_, i) => `word${i}`).join(' ')

function dbDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'agentmem-process-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function createAgent (server: ServerProcess): Promise<string> {
  const created = await request(`${server.url}/api/v1/agents`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'process test' }) })
  return (JSON.parse(created.raw).data as { id: string }).id
}

const chat = (server: ServerProcess, agentId: string, message: string): StreamClient =>
  new StreamClient(`${server.url}/api/v1/agents/${agentId}/chat/stream`, { method: 'POST', headers: auth, body: JSON.stringify({ message }) })

async function history (server: ServerProcess, agentId: string, sessionId: string): Promise<Array<{ role: string, content: string, metadata: { outcome?: string } }>> {
  const answer = await request(`${server.url}/api/v1/agents/${agentId}/chat/history?session_id=${sessionId}`, { method: 'GET', headers: auth })
  return JSON.parse(answer.raw).data
}

const sessionOf = (c: StreamClient): string => (c.events[0]?.json as { session_id: string }).session_id

t.test('SIGTERM with 200 streams in flight: each ends cleanly, the process exits 0, history has what clients saw', async (t) => {
  const env = {
    JWT_SECRET: SECRET,
    DATABASE_URL: `sqlite:${join(dbDir(t), 'agentmem.db')}`,
    BUILTIN_TOKEN_DELAY_MS: '20',
    SHUTDOWN_GRACE_MS: '300',
    STREAM_MAX_PER_TENANT: '1000'
  }
  const server = await startServerProcess(t, env)
  const agentId = await createAgent(server)
  // Long replies (about 2 s) cannot finish within the grace period; short ones (about 0.1 s) can.
  const long = Array.from({ length: 100 }, () => chat(server, agentId, LONG))
  const short = Array.from({ length: 100 }, () => chat(server, agentId, 'a short question of about ten words or so'))
  await Promise.all([...long, ...short].map(async (c) => await c.untilEvents(2)))
  server.proc.kill('SIGTERM')
  await Promise.all([...long, ...short].map(async (c) => await c.ended))
  t.same(await server.exited, { code: 0, signal: null }, 'the process exited by itself, with 0')

  const terminals = [...long, ...short].map((c) => c.events.filter((e) => ['done', 'error'].includes(e.json.chunk_type as string)))
  t.ok(terminals.every((list) => list.length === 1), 'every client got exactly one terminal event')
  t.ok(long.every((c) => c.last()?.code === 'server_shutdown'), 'long streams ended with server_shutdown')
  t.ok(short.every((c) => c.last()?.chunk_type === 'done' || c.last()?.code === 'server_shutdown'), 'short ones finished or were told')
  const done = short.filter((c) => c.last()?.chunk_type === 'done').length
  t.comment(`${done} of 100 short streams finished within the grace period`)

  // Restarted on the same file: every turn is in history exactly as its client saw it.
  const again = await startServerProcess(t, env)
  // Each turn that is not intact is named with what differs, so a failure says which guarantee broke.
  const broken: Array<Record<string, unknown>> = []
  for (const [i, c] of [...long, ...short].entries()) {
    const messages = await history(again, agentId, sessionOf(c))
    const outcome = c.last()?.chunk_type === 'done' ? 'done' : 'incomplete'
    const reply = messages[1]
    if (messages.length === 2 && messages[0]?.role === 'user' && reply?.content === c.text() && reply.metadata.outcome === outcome) continue
    broken.push({ turn: i < 100 ? `long ${i}` : `short ${i - 100}`, saw: c.last()?.code ?? c.last()?.chunk_type, roles: messages.map((m) => m.role), stored: reply?.metadata.outcome, storedChars: reply?.content.length, sawChars: c.text().length })
  }
  t.same(broken, [], 'all 200 turns stored, each reply equal to what its client received')
})

t.test('kill -9 mid-turn: the store reopens cleanly, with no half-written message', async (t) => {
  const dir = dbDir(t)
  const file = join(dir, 'agentmem.db')
  const env = { JWT_SECRET: SECRET, DATABASE_URL: `sqlite:${file}`, BUILTIN_TOKEN_DELAY_MS: '5' }
  const server = await startServerProcess(t, env)
  const agentId = await createAgent(server)
  // Some turns are done, some are mid-reply when the process dies.
  const finished = Array.from({ length: 10 }, () => chat(server, agentId, 'remember that my cat is called Miso'))
  await Promise.all(finished.map(async (c) => await c.ended))
  const cut = Array.from({ length: 20 }, (_, i) => chat(server, agentId, `${LONG} ${i}`))
  await Promise.all(cut.map(async (c) => await c.untilEvents(3)))
  server.proc.kill('SIGKILL')
  await server.exited
  await Promise.all(cut.map(async (c) => await c.ended))

  const db = new Database(file, { readonly: true })
  t.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'SQLite integrity check passes')
  db.close()

  const again = await startServerProcess(t, env)
  const ready = await request(`${again.url}/readyz`, { method: 'GET' })
  t.equal(ready.status, 200, 'ready after the restart')
  for (const c of finished) {
    t.same((await history(again, agentId, sessionOf(c))).map((m) => [m.role, m.metadata.outcome ?? null]), [['user', null], ['assistant', 'done']])
  }
  let clean = 0
  for (const c of cut) {
    const messages = await history(again, agentId, sessionOf(c))
    // The question was stored when the turn began; the reply is stored whole at its end, or not at all.
    if (messages.length === 1 && messages[0]?.role === 'user') clean++
  }
  t.equal(clean, 20, 'every cut turn has its question and no partial reply')
  const memories = await request(`${again.url}/api/v1/agents/${agentId}/memories`, { method: 'GET', headers: auth })
  t.ok((JSON.parse(memories.raw).data as unknown[]).length >= 1, 'memories announced before the kill are there')
  const fresh = chat(again, agentId, 'still there?')
  await fresh.ended
  t.equal(fresh.last()?.chunk_type, 'done', 'and the restarted server streams')
})

t.test('at LOG_LEVEL=info the process writes its log as JSON lines on stdout, one per request and per stream end', async (t) => {
  const server = await startServerProcess(t, { JWT_SECRET: SECRET, DATABASE_URL: 'sqlite::memory:', LOG_LEVEL: 'info' })
  const agentId = await createAgent(server)
  const c = new StreamClient(`${server.url}/api/v1/agents/${agentId}/chat/stream`, { method: 'POST', headers: { ...auth, 'x-request-id': 'req-stdout-1' }, body: JSON.stringify({ message: 'hello' }) })
  await c.ended
  const logged = (): Array<Record<string, unknown>> => server.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
  await until(() => logged().filter((l) => l.req_id === 'req-stdout-1').length === 2, 5000, 'both lines of the request are on stdout')
  const [end, req] = ['stream end', 'request'].map((msg) => logged().find((l) => l.req_id === 'req-stdout-1' && l.msg === msg))
  t.match(end, { level: 30, service: 'agentmem-stream', outcome: 'done', agent: agentId, time: /^\d{4}-\d\d-\d\dT/ })
  t.match(req, { method: 'POST', status: 200, path: `/api/v1/agents/${agentId}/chat/stream` })
  server.proc.kill('SIGTERM')
  t.equal((await server.exited).code, 0)
})
