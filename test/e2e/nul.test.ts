// U+0000 anywhere a client can put it gets the same answer on SQLite and PostgreSQL (which
// refuses NUL in text): strings and keys take U+FFFD at the edge, ids with NUL name nothing.
import t, { type Test } from 'tap'
import { createSigner } from 'fast-jwt'
import { SECRET, startApp } from '../helpers/server.js'
import { freshSchema } from '../helpers/postgres.js'
import { request } from '../helpers/sse-client.js'

const stores: Record<string, (t: Test) => Promise<string>> = {
  sqlite: async () => 'sqlite::memory:',
  postgres: async (t) => await freshSchema(t)
}

const admin = { org: 'org-a', sub: 'backend', roles: ['admin'] }

/** What each probe answered, to compare the stores. */
async function probe (t: Test, databaseUrl: string): Promise<Record<string, unknown>> {
  const app = await startApp(t, { databaseUrl })
  const { callAs, call, url } = app
  const seen: Record<string, unknown> = {}
  const agent = await callAs(admin, 'POST', '/api/v1/agents', { name: 'na\u0000me', system: 'be\u0000 terse', metadata: { 'k\u0000ey': 'v\u0000al' } })
  seen.agent = [agent.status, (agent.body.data as Record<string, unknown>).name, (agent.body.data as Record<string, unknown>).metadata]
  const agentId = (agent.body.data as { id: string }).id

  const chat = await callAs(admin, 'POST', `/api/v1/agents/${agentId}/chat`, {
    message: 'hel\u0000lo', session_id: 's\u00001', user_id: 'u\u00001', metadata: { 'm\u0000k': ['x\u0000'] }
  })
  seen.chat = [chat.status, (chat.body.data as { content: string }).content]
  const history = await callAs(admin, 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=${encodeURIComponent('s\u00001')}`)
  seen.history = [history.status, (history.body.data as Array<Record<string, unknown>>).map((m) => [m.user_id, m.session_id, m.content, m.role === 'user' ? m.metadata : null])]

  const memory = await callAs(admin, 'POST', `/api/v1/agents/${agentId}/memories`, { content: 'likes \u0000tea', user_id: 'u\u00001', metadata: { 'a\u0000': 1 } })
  seen.memory = [memory.status, (memory.body.data as Record<string, unknown>).content, (memory.body.data as Record<string, unknown>).metadata]
  const found = await callAs(admin, 'GET', `/api/v1/agents/${agentId}/memories/search?q=${encodeURIComponent('te\u0000a')}&user_id=${encodeURIComponent('u\u00001')}`)
  seen.search = found.status
  seen.plainAsOther = (await call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'x', user_id: 'user-1\u0000' })).status
  seen.pathId = (await call('org-a', 'GET', `/api/v1/agents/${encodeURIComponent('agent-\u0000x')}`)).status
  seen.memoryId = (await call('org-a', 'GET', `/api/v1/memories/${encodeURIComponent('mem-\u0000')}`)).status
  seen.streamId = (await call('org-a', 'GET', `/api/v1/streams/${encodeURIComponent('stream-\u0000')}`)).status
  const nulToken = createSigner({ key: SECRET, expiresIn: 60_000 })({ sub: 'u\u0000', org_id: 'org-a' })
  seen.claim = (await request(`${url}/api/v1/agents`, { method: 'GET', headers: { authorization: `Bearer ${nulToken}` } })).status
  return seen
}

t.test('NUL: the same answers on SQLite and PostgreSQL, never a 500', async (t) => {
  const answers = []
  for (const [kind, database] of Object.entries(stores)) {
    const seen = await probe(t, await database(t))
    t.same(seen, {
      agent: [201, 'na\uFFFDme', { 'k\uFFFDey': 'v\uFFFDal' }],
      chat: [200, 'You said: hel\uFFFDlo'],
      history: [200, [['u\uFFFD1', 's\uFFFD1', 'hel\uFFFDlo', { 'm\uFFFDk': ['x\uFFFD'] }], ['u\uFFFD1', 's\uFFFD1', 'You said: hel\uFFFDlo', null]]],
      memory: [201, 'likes \uFFFDtea', { 'a\uFFFD': 1 }],
      search: 200,
      plainAsOther: 403,
      pathId: 404,
      memoryId: 404,
      streamId: 404,
      claim: 401
    }, `${kind}: every NUL became U+FFFD, or named nothing`)
    answers.push(seen)
  }
  t.same(answers[0], answers[1], 'both stores alike')
})
