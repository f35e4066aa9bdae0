// AgentMem's own API shapes, as its UI, SDKs and MCP tools call them: org-wide memory routes,
// health routes, agents with llm_config, memories_count in done. On SQLite and PostgreSQL.
import t, { type Test } from 'tap'
import { startApp, type TestApp } from '../helpers/server.js'
import { freshSchema } from '../helpers/postgres.js'
import { request } from '../helpers/sse-client.js'
import { FakeOpenAI, startUpstream } from '../helpers/upstream.js'

const stores: Record<string, (t: Test) => Promise<string>> = {
  sqlite: async () => 'sqlite::memory:',
  postgres: async (t) => await freshSchema(t)
}

const admin = { org: 'org-a', sub: 'backend', roles: ['admin'] }
type Mem = { id: string, content: string, memory_type: string, importance: number, agent_id: string, user_id: string, score?: number }

async function setup (t: Test, databaseUrl: string): Promise<TestApp & { upstream: FakeOpenAI }> {
  const upstream = await startUpstream(t)
  const app = await startApp(t, { databaseUrl, llmProvider: 'openai', openaiApiKey: 'k', openaiBaseUrl: upstream.url })
  return { ...app, upstream }
}

for (const [kind, database] of Object.entries(stores)) {
  t.test(`${kind}: memories in AgentMem's shapes`, async (t) => {
    const { call, callAs, createAgent } = await setup(t, await database(t))
    const agentId = await createAgent('org-a')
    const other = await createAgent('org-a')
    const foreign = await createAgent('org-b')

    const created = await call('org-a', 'POST', '/api/v1/memories', { content: 'User likes green tea', agent_id: agentId, memory_type: 'semantic', importance: 0.8, metadata: { source: 'ui' } })
    t.equal(created.status, 201)
    t.match(created.body, { data: { id: /^mem-/, message: String }, success: true })
    const id = (created.body.data as { id: string }).id
    const got = await call('org-a', 'GET', `/api/v1/memories/${id}`)
    t.match(got.body.data, { id, content: 'User likes green tea', memory_type: 'Semantic', importance: 0.8, agent_id: agentId, user_id: 'user-1', metadata: { source: 'ui' } }, 'lowercase memory types are taken')
    for (const [content, type, importance, agent] of [['User drinks black tea at night', 'Episodic', 0.3, agentId], ['User owns a tea pot', 'factual', 0.5, agentId], ['User likes tea ceremonies', 'Knowledge', 0.9, other]] as const) {
      t.equal((await call('org-a', 'POST', '/api/v1/memories', { content, agent_id: agent, memory_type: type, importance })).status, 201)
    }
    await callAs(admin, 'POST', '/api/v1/memories', { content: 'Bob likes tea too', agent_id: agentId, user_id: 'bob' })

    const search = await call('org-a', 'POST', '/api/v1/memories/search', { query: 'tea', agent_id: agentId, limit: 2 })
    t.equal(search.status, 200)
    const data = search.body.data as { results: Mem[], total: number, offset: number, limit: number, has_more: boolean }
    t.match(data, { total: 3, offset: 0, limit: 2, has_more: true })
    const chatRanking = ((await call('org-a', 'GET', `/api/v1/agents/${agentId}/memories/search?q=tea`)).body.data as Mem[]).map((m) => m.content)
    t.equal(chatRanking.length, 3)
    t.same(data.results.map((m) => m.content), chatRanking.slice(0, 2), 'ranked by the chat\'s retrieval')
    t.ok(data.results.every((m, i) => m.score === 1 / (i + 1) && m.agent_id === agentId && m.user_id === 'user-1'), 'with a score, the caller\'s own only')
    const page2 = (await call('org-a', 'POST', '/api/v1/memories/search', { query: 'tea', agent_id: agentId, limit: 2, offset: 2 })).body.data as typeof data
    t.match(page2, { total: 3, offset: 2, has_more: false })
    t.same(page2.results.map((m) => m.content), chatRanking.slice(2))
    const everyAgent = (await call('org-a', 'POST', '/api/v1/memories/search', { query: 'tea' })).body.data as typeof data
    t.equal(everyAgent.total, 4, 'without agent_id: every agent of the org')
    const filtered = (await call('org-a', 'POST', '/api/v1/memories/search', { query: 'tea', memory_type: 'episodic', min_importance: 0.2, threshold: 0.3 })).body.data as typeof data
    t.same(filtered.results.map((m) => m.memory_type), ['Episodic'])
    t.equal(((await call('org-a', 'POST', '/api/v1/memories/search', { query: 'tea', min_importance: 0.85 })).body.data as typeof data).total, 1)

    const list = await call('org-a', 'GET', '/api/v1/memories?page=0&limit=2')
    t.match(list.body, { data: { pagination: { page: 0, limit: 2, total: 4, total_pages: 2 } }, success: true })
    t.same(((list.body.data as { memories: Mem[] }).memories).map((m) => m.content), ['User likes tea ceremonies', 'User owns a tea pot'], 'newest first')
    const byImportance = (await call('org-a', 'GET', `/api/v1/memories?agent_id=${agentId}&sort_by=importance&order=asc`)).body.data as { memories: Mem[] }
    t.same(byImportance.memories.map((m) => m.importance), [0.3, 0.5, 0.8])
    const typed = (await call('org-a', 'GET', '/api/v1/memories?memory_type=knowledge')).body.data as { memories: Mem[] }
    t.same(typed.memories.map((m) => m.content), ['User likes tea ceremonies'])
    t.equal(((await callAs(admin, 'GET', '/api/v1/memories?user_id=bob')).body.data as { memories: Mem[] }).memories.length, 1)
    t.equal(((await callAs(admin, 'GET', '/api/v1/memories?page=1&limit=3&sort_by=updated_at')).body.data as { memories: Mem[] }).memories.length, 2)

    const updated = await call('org-a', 'PUT', `/api/v1/memories/${id}`, { content: 'User likes oolong', importance: 0.6, metadata: { edited: true } })
    t.match(updated.body.data, { id, content: 'User likes oolong', importance: 0.6, metadata: { edited: true } })
    const deleted = await call('org-a', 'DELETE', `/api/v1/memories/${id}`)
    t.equal(deleted.status, 200)
    t.same(deleted.body, { data: { id, message: 'Memory deleted' }, success: true })
    t.equal((await call('org-a', 'GET', `/api/v1/memories/${id}`)).status, 404)

    // Another org's agent or memory: 404, as everywhere.
    t.equal((await call('org-a', 'POST', '/api/v1/memories', { content: 'x', agent_id: foreign })).status, 404)
    t.equal((await call('org-a', 'POST', '/api/v1/memories/search', { query: 'x', agent_id: foreign })).status, 404)
    t.equal((await call('org-a', 'GET', `/api/v1/memories?agent_id=${foreign}`)).status, 404)
    const theirs = (await call('org-b', 'POST', '/api/v1/memories', { content: 'secret', agent_id: foreign })).body.data as { id: string }
    for (const method of ['GET', 'PUT', 'DELETE']) {
      t.equal((await call('org-a', method, `/api/v1/memories/${theirs.id}`, method === 'PUT' ? { content: 'x' } : undefined)).status, 404, `${method} another org's memory`)
    }
    t.equal(((await call('org-b', 'GET', '/api/v1/memories')).body.data as { memories: Mem[] }).memories.length, 1, 'and each org lists its own')

    const bad: Array<[string, string, unknown, string]> = [
      ['POST', '/api/v1/memories', { content: 'x' }, '/'],
      ['POST', '/api/v1/memories', { content: '', agent_id: agentId }, '/content'],
      ['POST', '/api/v1/memories', { content: 'x'.repeat(10_001), agent_id: agentId }, '/content'],
      ['POST', '/api/v1/memories', { content: 'x', agent_id: agentId, importance: 2 }, '/importance'],
      ['POST', '/api/v1/memories', { content: 'x', agent_id: agentId, memory_type: 'Dream' }, '/memory_type'],
      ['POST', '/api/v1/memories/search', { query: '' }, '/query'],
      ['POST', '/api/v1/memories/search', { query: 'x', limit: 101 }, '/limit'],
      ['POST', '/api/v1/memories/search', { query: 'x', threshold: 2 }, '/threshold'],
      ['GET', '/api/v1/memories?limit=0', undefined, '?limit'],
      ['GET', '/api/v1/memories?page=-1', undefined, '?page'],
      ['GET', '/api/v1/memories?sort_by=content', undefined, '?sort_by'],
      ['GET', '/api/v1/memories?order=up', undefined, '?order'],
      ['GET', '/api/v1/memories?memory_type=Dream', undefined, '?memory_type']
    ]
    for (const [method, path, body, where] of bad) {
      const res = await call('org-a', method, path, body)
      t.equal(res.status, 400, `${method} ${path} ${JSON.stringify(body) ?? ''}`)
      t.match(res.body, { code: 'VALIDATION_ERROR', details: [{ path: where }] })
    }
  })
}

t.test('health under AgentMem\'s names, with the same checks', async (t) => {
  const { url } = await startApp(t)
  const health = await request(`${url}/health`, { method: 'GET' })
  t.equal(health.status, 200)
  t.match(JSON.parse(health.raw), { status: 'healthy', version: String, timestamp: String, checks: { database: { status: 'healthy', kind: 'sqlite' }, coordinator: { status: 'healthy', kind: 'local' } } })
  t.match(JSON.parse((await request(`${url}/health/ready`, { method: 'GET' })).raw), { status: 'healthy' })
  t.match(JSON.parse((await request(`${url}/health/live`, { method: 'GET' })).raw), { status: 'alive', timestamp: String })
})

t.test('agents take AgentMem\'s llm_config: model, temperature, max_tokens, top_p honoured; secrets and URLs refused', async (t) => {
  const { call, stream, upstream } = await setup(t, 'sqlite::memory:')
  const created = await call('org-a', 'POST', '/api/v1/agents', {
    name: 'agentmem agent', llm_config: { provider: 'openai', model: 'gpt-4.1-mini', temperature: 0.3, max_tokens: 256, top_p: 0.9, stop: ['\n\n'] }
  })
  t.equal(created.status, 201)
  const agentId = (created.body.data as { id: string }).id
  t.match(created.body.data, { llm_config: { provider: 'openai', model: 'gpt-4.1-mini', max_tokens: 256, top_p: 0.9, stop: ['\n\n'] } }, 'other keys are kept')
  const s = stream('org-a', agentId, { message: 'hi', user_id: 'user-1', session_id: 's1', stream: true })
  await s.ended
  t.match(upstream.requests[0]?.body, { model: 'gpt-4.1-mini', temperature: 0.3, max_tokens: 256, top_p: 0.9 }, 'per agent, when calling the upstream')
  t.match(s.last(), { chunk_type: 'done', memories_count: 0 }, 'done carries memories_count as a number')

  const refused: Array<[unknown, string]> = [
    [{ llm_config: { provider: 'anthropic', model: 'x' } }, '/llm_config/provider'],
    [{ llm_config: { provider: 'openai', api_key: 'sk-tenant' } }, '/llm_config/api_key'],
    [{ llm_config: { base_url: 'http://169.254.169.254/' } }, '/llm_config/base_url'],
    [{ name: 'x'.repeat(256) }, '/name'],
    [{ llm_config: { max_tokens: 0 } }, '/llm_config/max_tokens'],
    [{ llm_config: { top_p: 1.5 } }, '/llm_config/top_p']
  ]
  for (const [body, path] of refused) {
    const res = await call('org-a', 'POST', '/api/v1/agents', body)
    t.equal(res.status, 400, JSON.stringify(body))
    t.match(res.body, { code: 'VALIDATION_ERROR', details: [{ path }] })
    const put = await call('org-a', 'PUT', `/api/v1/agents/${agentId}`, body)
    t.equal(put.status, 400, `PUT ${JSON.stringify(body)}`)
  }
  t.match((await call('org-a', 'POST', '/api/v1/agents', { llm_config: { provider: 'anthropic' } })).body, { details: [{ message: /must be openai/ }] })
})

t.test('done.memories_count is the turn\'s memories added or updated', async (t) => {
  const { stream, createAgent } = await startApp(t)
  const agentId = await createAgent('org-a')
  const s = stream('org-a', agentId, { message: 'Hi, my name is Ada and I love green tea' })
  await s.ended
  const updates = s.events.filter((e) => e.json.chunk_type === 'memory_update')
  t.equal(s.last()?.memories_count, updates.at(-1)?.json.memories_count)
  t.equal(s.last()?.memories_count, 2)
})
