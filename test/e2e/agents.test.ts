import t from 'tap'
import { startApp } from '../helpers/server.js'

t.test('agent CRUD scoped to the caller\'s org', async (t) => {
  const { call } = await startApp(t)
  const created = await call('org-a', 'POST', '/api/v1/agents', {
    name: 'helper', description: 'd', system: 'be nice', llm_config: { model: 'x', temperature: 1 }, metadata: { team: 'blue' }
  })
  t.equal(created.status, 201)
  const agent = created.body.data as Record<string, unknown>
  t.match(agent, { id: /^agent-[0-9a-f-]{36}$/, organization_id: 'org-a', name: 'helper', system: 'be nice', llm_config: { model: 'x', temperature: 1 }, metadata: { team: 'blue' } })
  const minimal = await call('org-a', 'POST', '/api/v1/agents', { name: 'bare' })
  t.match(minimal.body.data, { description: null, system: null, llm_config: {}, metadata: {} })

  const listed = await call('org-a', 'GET', '/api/v1/agents')
  t.same((listed.body.data as Array<{ name: string }>).map((a) => a.name), ['helper', 'bare'])
  const paged = await call('org-a', 'GET', '/api/v1/agents?limit=1&offset=1')
  t.same((paged.body.data as Array<{ name: string }>).map((a) => a.name), ['bare'])
  for (const q of ['limit=0', 'limit=101', 'limit=abc', 'offset=-1', 'limit=1e2']) {
    const res = await call('org-a', 'GET', `/api/v1/agents?${q}`)
    t.equal(res.status, 400, q)
    t.equal(res.body.code, 'VALIDATION_ERROR')
  }

  const got = await call('org-a', 'GET', `/api/v1/agents/${String(agent.id)}`)
  t.same(got.body.data, agent)
  const updated = await call('org-a', 'PUT', `/api/v1/agents/${String(agent.id)}`, { name: 'renamed', system: null })
  t.match(updated.body.data, { name: 'renamed', system: null, description: 'd', created_at: agent.created_at })
  t.equal((await call('org-a', 'PUT', `/api/v1/agents/${String(agent.id)}`, {})).status, 400, 'empty update')
  t.equal((await call('org-a', 'PUT', `/api/v1/agents/${String(agent.id)}`, { llm_config: { temperature: 9 } })).status, 400)
  const unnamed = await call('org-a', 'POST', '/api/v1/agents', { description: 'no name' })
  t.equal(unnamed.status, 201, 'a name is optional, as in AgentMem')
  t.equal((unnamed.body.data as { name: string }).name, 'Unnamed agent')

  const deleted = await call('org-a', 'DELETE', `/api/v1/agents/${String(agent.id)}`)
  t.equal(deleted.status, 204)
  t.equal(deleted.client.raw, '')
  t.equal((await call('org-a', 'GET', `/api/v1/agents/${String(agent.id)}`)).status, 404)
  t.equal((await call('org-a', 'DELETE', `/api/v1/agents/${String(agent.id)}`)).status, 404)
  t.equal((await call('org-a', 'PUT', `/api/v1/agents/${String(agent.id)}`, { name: 'x' })).status, 404)
})

t.test('chat history: per session, limited, newest kept, oldest first', async (t) => {
  const { call, callAs, createAgent, stream, token } = await startApp(t)
  const agentId = await createAgent('org-a')
  for (const [session, message] of [['s1', 'one'], ['s2', 'two'], ['s1', 'three']]) {
    await stream('org-a', agentId, { message, session_id: session }).ended
  }
  const s1 = await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=s1`)
  t.same((s1.body.data as Array<{ content: string }>).map((m) => m.content), ['one', 'You said: one', 'three', 'You said: three'])
  const all = await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?limit=3`)
  t.same((all.body.data as Array<{ content: string }>).map((m) => m.content), ['You said: two', 'three', 'You said: three'])
  t.equal((await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?limit=501`)).status, 400)
  // An admin of the org acts for another user; the turn is stored as that user's.
  const withUser = stream('org-a', agentId, { message: 'as someone', user_id: 'u-42', session_id: 's3', metadata: { k: 1 } },
    { headers: { authorization: `Bearer ${token('org-a', 'backend', ['admin'])}` } })
  await withUser.ended
  const s3 = await callAs({ org: 'org-a', sub: 'backend', roles: ['admin'] }, 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=s3`)
  t.match(s3.body.data, [{ user_id: 'u-42', metadata: { k: 1 } }, { user_id: 'u-42', role: 'assistant' }])

  // Deleting the agent removes its conversation too.
  await call('org-a', 'DELETE', `/api/v1/agents/${agentId}`)
  const again = await createAgent('org-a')
  t.same((await call('org-a', 'GET', `/api/v1/agents/${again}/chat/history`)).body.data, [])
})

t.test('listens on IPv6 loopback and reports a bracketed URL', async (t) => {
  const { url, call } = await startApp(t, { host: '::1' })
  t.match(url, /^http:\/\/\[::1\]:\d+$/)
  t.equal((await call('org-a', 'GET', '/api/v1/agents')).status, 200)
})
