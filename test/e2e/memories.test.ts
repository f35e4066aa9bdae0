import t from 'tap'
import { startApp } from '../helpers/server.js'
import { SqliteStore } from '../../lib/store/sqlite.js'

type Mem = Record<string, unknown> & { id: string, content: string }

t.test('memory CRUD, listing and BM25 search, all scoped to the org', async (t) => {
  const { call, callAs, createAgent } = await startApp(t)
  const agentId = await createAgent('org-a')
  const base = `/api/v1/agents/${agentId}/memories`
  // An admin of the org acts for its other users (see the authorization tests).
  const admin = { org: 'org-a', sub: 'backend', roles: ['admin'] }
  const add = async (body: Record<string, unknown>): Promise<Mem> => {
    const res = await call('org-a', 'POST', base, body)
    t.equal(res.status, 201)
    return res.body.data as Mem
  }
  const tea = await add({ content: 'User likes green tea' })
  t.match(tea, { id: /^mem-[0-9a-f-]{36}$/, organization_id: 'org-a', agent_id: agentId, user_id: 'user-1', session_id: null, memory_type: 'Semantic', importance: 0.5, metadata: {} })
  const paris = await add({ content: 'User lives in Paris and drinks tea daily', memory_type: 'Episodic', importance: 0.9, session_id: 's1', metadata: { k: 1 } })
  t.equal((await callAs(admin, 'POST', base, { content: 'User has a dog', user_id: 'user-2' })).status, 201)
  const newerTea = await add({ content: 'User likes green tea' })

  t.equal(((await callAs(admin, 'GET', base)).body.data as Mem[]).length, 4, 'an admin lists every user\'s')
  const all = await call('org-a', 'GET', base)
  t.equal((all.body.data as Mem[]).length, 3, 'a plain user lists its own')
  t.equal((all.body.data as Mem[])[0]?.id, newerTea.id, 'newest first')
  t.equal((all.body.data as Mem[])[2]?.id, tea.id, 'oldest last')
  const user2 = await callAs(admin, 'GET', `${base}?user_id=user-2`)
  t.same((user2.body.data as Mem[]).map((m) => m.content), ['User has a dog'])
  const page = await call('org-a', 'GET', `${base}?limit=1&offset=1`)
  t.equal((page.body.data as Mem[]).length, 1)

  const search = await call('org-a', 'GET', `${base}/search?q=green+tea`)
  t.same((search.body.data as Mem[]).map((m) => m.id), [newerTea.id, tea.id, paris.id], 'best BM25 match first, newer first among equals, user-1 only')
  t.same((await callAs(admin, 'GET', `${base}/search?q=dog&user_id=user-2`)).body.data, (user2.body.data as Mem[]).slice(0, 1))
  t.same((await call('org-a', 'GET', `${base}/search?q=${encodeURIComponent('NEAR( "tea" * OR')}`)).body.data.length, 3, 'FTS syntax in q is just words')
  t.same((await call('org-a', 'GET', `${base}/search?q=`)).body.data, [])
  t.same((await call('org-a', 'GET', `${base}/search`)).body.data, [], 'no q at all')
  t.same((await call('org-a', 'GET', `${base}/search?q=tea&limit=1`)).body.data.length, 1)
  t.equal((await call('org-a', 'GET', `${base}/search?q=tea&limit=0`)).status, 400)

  const got = await call('org-a', 'GET', `/api/v1/memories/${paris.id}`)
  t.same(got.body.data, paris)
  const same = await call('org-a', 'PUT', `/api/v1/memories/${paris.id}`, { content: paris.content })
  t.match(same.body.data, { content: paris.content, memory_type: 'Episodic' }, 'a PUT of the same text is harmless')
  const updated = await call('org-a', 'PUT', `/api/v1/memories/${paris.id}`, { content: 'User lives in Berlin', importance: 0.3 })
  t.match(updated.body.data, { id: paris.id, content: 'User lives in Berlin', importance: 0.3, memory_type: 'Episodic', created_at: paris.created_at })
  t.same((await call('org-a', 'GET', `${base}/search?q=paris`)).body.data, [], 'the index follows updates')
  t.equal((await call('org-a', 'GET', `${base}/search?q=berlin`)).body.data[0].id, paris.id)
  const deleted = await call('org-a', 'DELETE', `/api/v1/memories/${paris.id}`)
  t.equal(deleted.status, 200, 'DELETE answers 200 with a body, as AgentMem does')
  t.same(deleted.body, { data: { id: paris.id, message: 'Memory deleted' }, success: true })
  t.equal((await call('org-a', 'GET', `/api/v1/memories/${paris.id}`)).status, 404)
  t.same((await call('org-a', 'GET', `${base}/search?q=berlin`)).body.data, [], 'and deletes')

  for (const bad of [{}, { content: '' }, { content: 'x', importance: 2 }, { content: 'x', memory_type: 'Dream' }]) {
    t.equal((await call('org-a', 'POST', base, bad)).status, 400, JSON.stringify(bad))
  }
  t.equal((await call('org-a', 'PUT', `/api/v1/memories/${tea.id}`, {})).status, 400)
  t.equal((await call('org-a', 'PUT', `/api/v1/memories/mem-none`, { content: 'x' })).status, 404)
  t.equal((await call('org-a', 'DELETE', `/api/v1/memories/mem-none`)).status, 404)
})

t.test('tenant isolation on every memory route', async (t) => {
  const { call, createAgent } = await startApp(t)
  const agentA = await createAgent('org-a')
  const agentB = await createAgent('org-b')
  const mem = (await call('org-a', 'POST', `/api/v1/agents/${agentA}/memories`, { content: 'secret of org a' })).body.data as Mem
  const attempts: Array<[string, string, unknown]> = [
    ['POST', `/api/v1/agents/${agentA}/memories`, { content: 'planted' }],
    ['GET', `/api/v1/agents/${agentA}/memories`, undefined],
    ['GET', `/api/v1/agents/${agentA}/memories/search?q=secret`, undefined],
    ['GET', `/api/v1/memories/${mem.id}`, undefined],
    ['PUT', `/api/v1/memories/${mem.id}`, { content: 'overwritten' }],
    ['DELETE', `/api/v1/memories/${mem.id}`, undefined]
  ]
  for (const [method, path, body] of attempts) {
    const res = await call('org-b', method, path, body)
    t.equal(res.status, 404, `${method} ${path} from org-b`)
  }
  t.same((await call('org-b', 'GET', `/api/v1/agents/${agentB}/memories/search?q=secret`)).body.data, [])
  const still = await call('org-a', 'GET', `/api/v1/memories/${mem.id}`)
  t.equal((still.body.data as Mem).content, 'secret of org a', 'untouched')
  t.equal(((await call('org-a', 'GET', `/api/v1/agents/${agentA}/memories`)).body.data as Mem[]).length, 1, 'nothing planted')
})

t.test('a memory deleted between its read and its update answers 404, like a missing one', async (t) => {
  class Racing extends SqliteStore {
    override async updateMemory (): ReturnType<SqliteStore['updateMemory']> { return null }
  }
  const { call, createAgent } = await startApp(t, {}, { store: new Racing(':memory:') })
  const agentId = await createAgent('org-a')
  const mem = (await call('org-a', 'POST', `/api/v1/agents/${agentId}/memories`, { content: 'soon gone' })).body.data as Mem
  const res = await call('org-a', 'PUT', `/api/v1/memories/${mem.id}`, { content: 'too late' })
  t.equal(res.status, 404)
  t.equal(res.body.code, 'NOT_FOUND')
})
