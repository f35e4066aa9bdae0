// The sequence of calls AgentMem's web UI makes (agentmem-ui/src/lib/api-client.ts and its chat
// page), with its request bodies, reading the fields it reads: through an admin JWT, as its admin
// console uses, and through an org API key.
import t, { type Test } from 'tap'
import { startApp, type TestApp } from '../helpers/server.js'

const ADMIN = { org: 'org-a', sub: 'console', roles: ['admin'] }

/** What the UI's `request()` does: JSON in, Authorization: Bearer, throw unless ok, JSON out. */
function client (base: string, bearer: string) {
  return async <T>(endpoint: string, init: RequestInit = {}): Promise<T> => {
    const response = await fetch(`${base}${endpoint}`, { ...init, headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${bearer}`, ...(init.headers as Record<string, string>) } })
    if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`)
    return await response.json() as T
  }
}

/** The chat page's stream loop: fetch, read lines, JSON.parse every `data:` line. */
async function streamChat (base: string, bearer: string, agentId: string, body: unknown): Promise<Array<Record<string, unknown>>> {
  const response = await fetch(`${base}/api/v1/agents/${agentId}/chat/stream`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${bearer}` }, body: JSON.stringify(body) })
  if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status}`)
  const reader = response.body.getReader()
  const decoder = new TextDecoder()
  const chunks: Array<Record<string, unknown>> = []
  let buffer = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    buffer += decoder.decode(value, { stream: true })
    const lines = buffer.split('\n')
    buffer = lines.pop() as string
    for (const line of lines) if (line.startsWith('data: ')) chunks.push(JSON.parse(line.slice(6)) as Record<string, unknown>)
  }
  return chunks
}

async function replayUi (t: Test, app: TestApp, bearer: string): Promise<void> {
  const request = client(app.url, bearer)
  const agents = await request<{ data: unknown[] }>('/api/v1/agents')
  t.ok(Array.isArray(agents.data), 'getAgents: response.data is the list')
  const agent = (await request<{ data: { id: string, name: string } }>('/api/v1/agents', {
    method: 'POST', body: JSON.stringify({ name: 'Support bot', description: 'from the UI', llm_config: { provider: 'builtin', model: 'builtin-echo', temperature: 0.7, max_tokens: 512 } })
  })).data
  t.equal(agent.name, 'Support bot', 'createAgent with llm_config')

  const chunks = await streamChat(app.url, bearer, agent.id, { message: 'Hi, my name is Ada and I love green tea', user_id: 'ada', session_id: 'ui-session', stream: true })
  const text = chunks.filter((c) => c.chunk_type === 'content').map((c) => c.content).join('')
  t.equal(text, 'You said: Hi, my name is Ada and I love green tea', 'the chat page shows the reply')
  t.match(chunks.at(-1), { chunk_type: 'done', memories_count: 2 }, 'and reads memories_count from done')
  const history = await request<{ data: Array<{ id: string, role: string, content: string | null, created_at: string }> }>(`/api/v1/agents/${agent.id}/chat/history`)
  t.same(history.data.map((m) => m.role), ['user', 'assistant'], 'getChatHistory')

  const created = await request<{ data: { id: string } }>('/api/v1/memories', {
    method: 'POST', body: JSON.stringify({ agent_id: agent.id, memory_type: 'factual', content: 'Ada works at the lighthouse', importance: 0.7, metadata: { from: 'ui' } })
  })
  t.match(created.data.id, /^mem-/, 'createMemory: response.data.id')
  const found = await request<{ data: { results: Array<{ content: string, score: number }>, total: number } }>('/api/v1/memories/search', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ query: 'lighthouse', agent_id: agent.id, user_id: bearer.startsWith('agm_') ? undefined : 'default' })
  })
  t.ok(found.data.total >= 0, 'searchMemories answers')
  const all = await request<{ data: { memories: Array<{ id: string, content: string, memory_type: string }>, pagination: { page: number, limit: number, total: number, total_pages: number } } }>(`/api/v1/memories?page=0&limit=20&agent_id=${agent.id}`)
  t.ok(all.data.memories.some((m) => m.id === created.data.id && m.memory_type === 'Factual'), 'getAllMemories: data.memories')
  t.match(all.data.pagination, { page: 0, limit: 20, total: all.data.memories.length, total_pages: 1 })
  const updated = await request<{ data: { content: string } }>(`/api/v1/memories/${created.data.id}`, { method: 'PUT', body: JSON.stringify({ content: 'Ada keeps the lighthouse', importance: 0.8 }) })
  t.equal(updated.data.content, 'Ada keeps the lighthouse', 'updateMemory')
  const got = await request<{ data: { content: string } }>(`/api/v1/memories/${created.data.id}`)
  t.equal(got.data.content, 'Ada keeps the lighthouse', 'getMemory')
  await request(`/api/v1/memories/${created.data.id}`, { method: 'DELETE' })
  t.pass('deleteMemory: a JSON answer the client can read (it throws and retries on anything else)')
  const health = await fetch(`${app.url}/health`).then(async (r) => await r.json() as { status: string })
  t.equal(health.status, 'healthy', 'getHealth')
}

t.test('AgentMem\'s UI, through an admin JWT', async (t) => {
  const app = await startApp(t)
  await replayUi(t, app, app.token(ADMIN.org, ADMIN.sub, ADMIN.roles))
})

t.test('AgentMem\'s UI, through an org API key', async (t) => {
  const app = await startApp(t)
  const { key } = (await app.callAs(ADMIN, 'POST', '/api/v1/api-keys', { name: 'ui', roles: ['admin'] })).body.data as { key: string }
  await replayUi(t, app, key)
})
