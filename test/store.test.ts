import t, { type Test } from 'tap'
import { PostgresStore } from '../lib/store/postgres.js'
import { SqliteStore } from '../lib/store/sqlite.js'
import type { Store } from '../lib/store/store.js'
import { freshSchema } from './helpers/postgres.js'
import { storableText } from '../lib/http/body.js'
import { startApp } from './helpers/server.js'

/** The Store contract, run unchanged against every implementation. */
const BACKENDS: Array<[string, (t: Test) => Promise<Store>]> = [
  ['sqlite', async () => new SqliteStore(':memory:')],
  ['postgres', async (t) => await PostgresStore.open({ connectionString: await freshSchema(t) })]
]

for (const [name, open] of BACKENDS) {
  t.test(`${name}: agents are org-scoped, ordered and paged`, async (t) => {
    const store = await open(t)
    t.teardown(() => store.close())
    await store.ping()
    const a = await store.createAgent('o1', { name: 'a', system: 's', llm_config: { model: 'm' }, metadata: { k: 1 } })
    const b = await store.createAgent('o1', { name: 'b' })
    await store.createAgent('o2', { name: 'other' })
    t.same(await store.getAgent('o1', a.id), a)
    t.equal(await store.getAgent('o2', a.id), null)
    t.same((await store.listAgents('o1', { limit: 10, offset: 0 })).map((x) => x.name), ['a', 'b'])
    t.same((await store.listAgents('o1', { limit: 1, offset: 1 })).map((x) => x.id), [b.id])
    t.match(await store.updateAgent('o1', a.id, { name: 'a2', system: null }), { name: 'a2', system: null, llm_config: { model: 'm' } })
    t.equal(await store.updateAgent('o2', a.id, { name: 'x' }), null)
    t.match(await store.getAgent('o1', a.id), { name: 'a2' })
    t.notOk(await store.deleteAgent('o2', a.id))
    t.ok(await store.deleteAgent('o1', a.id))
    t.equal(await store.getAgent('o1', a.id), null)
  })

  t.test(`${name}: appendMessages stores a batch in order, all or none`, async (t) => {
    const store = await open(t)
    t.teardown(() => store.close())
    const agent = await store.createAgent('o', { name: 'a' })
    const base = { organization_id: 'o', agent_id: agent.id, user_id: 'u', session_id: 's', metadata: {} }
    const stored = await (store.appendMessages as NonNullable<Store['appendMessages']>)([
      { ...base, role: 'user', content: 'one' }, { ...base, role: 'assistant', content: 'two', metadata: { outcome: 'done' } }, { ...base, role: 'user', content: 'three' }
    ])
    t.same(stored.map((m) => m.content), ['one', 'two', 'three'])
    // What an array literal (PostgreSQL's batch) must escape, and what it must not mistake for syntax.
    const awkward = ['say "hi"', 'C:\\dir\\', '{a,b}', 'NULL', '', ' spaced ', 'line\nbreak', '\\"']
    const tricky = await (store.appendMessages as NonNullable<Store['appendMessages']>)(
      awkward.map((content) => ({ ...base, session_id: 'awkward', role: 'user', content, metadata: { quoted: content } })))
    t.same(await store.listMessages('o', agent.id, { sessionId: 'awkward', limit: 10 }), tricky, 'text with quotes, backslashes, braces and commas round-trips')
    t.same(tricky.map((m) => m.content), awkward)
    t.match(stored[0], { id: /^msg-/, created_at: String })
    t.same(await store.listMessages('o', agent.id, { sessionId: 's', limit: 10 }), stored, 'as returned, in order')
    // A row whose agent is gone fails the whole batch: nothing of it is stored.
    await t.rejects((store.appendMessages as NonNullable<Store['appendMessages']>)([
      { ...base, role: 'user', content: 'four' }, { ...base, agent_id: 'agent-gone', content: 'orphan', role: 'user' }
    ]))
    t.same((await store.listMessages('o', agent.id, { sessionId: 's', limit: 10 })).map((m) => m.content), ['one', 'two', 'three'])
  })

  t.test(`${name}: text the edge made storable (a NUL as U+FFFD) round-trips, in keys and values`, async (t) => {
    const store = await open(t)
    t.teardown(() => store.close())
    const text = storableText('a\u0000b\ud800c')
    t.equal(text, 'a\uFFFDb\uFFFDc')
    const agent = await store.createAgent('o', { name: text, system: text, metadata: { [text]: text } })
    t.same(await store.getAgent('o', agent.id), agent)
    const message = await store.appendMessage({ organization_id: 'o', agent_id: agent.id, user_id: text, session_id: text, role: 'user', content: text, metadata: { [text]: [text] } })
    t.same(await store.listMessages('o', agent.id, { sessionId: text, userId: text, limit: 5 }), [message])
    const memory = await store.addMemory('o', agent.id, { user_id: text, content: `likes ${text}`, metadata: { [text]: 1 } })
    t.same(await store.getMemory('o', memory.id), memory)
  })

  t.test(`${name}: history of one user, or of all`, async (t) => {
    const store = await open(t)
    t.teardown(() => store.close())
    const agent = await store.createAgent('o', { name: 'a' })
    for (const [user, session] of [['u1', 's'], ['u2', 's'], ['u1', 't']]) {
      await store.appendMessage({ organization_id: 'o', agent_id: agent.id, user_id: user as string, session_id: session as string, role: 'user', content: `${user as string} in ${session as string}`, metadata: {} })
    }
    const contents = async (q: { sessionId?: string, userId?: string }): Promise<string[]> => (await store.listMessages('o', agent.id, { ...q, limit: 10 })).map((m) => m.content)
    t.same(await contents({ userId: 'u1' }), ['u1 in s', 'u1 in t'])
    t.same(await contents({ sessionId: 's', userId: 'u2' }), ['u2 in s'])
    t.same(await contents({ sessionId: 's' }), ['u1 in s', 'u2 in s'])
  })

  t.test(`${name}: messages by session, newest kept, oldest first; gone with their agent`, async (t) => {
    const store = await open(t)
    t.teardown(() => store.close())
    const agent = await store.createAgent('o', { name: 'a' })
    const base = { organization_id: 'o', agent_id: agent.id, user_id: 'u', metadata: {} }
    for (const [session, content] of [['s1', 'one'], ['s2', 'two'], ['s1', 'three'], ['s1', 'four']]) {
      await store.appendMessage({ ...base, session_id: session as string, role: 'user', content: content as string })
    }
    t.same((await store.listMessages('o', agent.id, { sessionId: 's1', limit: 2 })).map((m) => m.content), ['three', 'four'])
    t.same((await store.listMessages('o', agent.id, { limit: 10 })).map((m) => m.content), ['one', 'two', 'three', 'four'])
    t.same(await store.listMessages('x', agent.id, { limit: 10 }), [])
    await store.deleteAgent('o', agent.id)
    t.same(await store.listMessages('o', agent.id, { limit: 10 }), [])
  })

  t.test(`${name}: memories, full-text search per user, vectors, updates`, async (t) => {
    const store = await open(t)
    t.teardown(() => store.close())
    const agent = await store.createAgent('o', { name: 'a' })
    const add = async (content: string, user = 'u', embedding: number[] | null = null): Promise<string> =>
      (await store.addMemory('o', agent.id, { user_id: user, content, embedding })).id
    const tea = await add('User likes green tea', 'u', [1, 0])
    const paris = await add('User lives in Paris and drinks tea', 'u', [0, 1])
    const newer = await add('User likes green tea')
    await add('User likes green tea', 'other-user')
    t.match(await store.getMemory('o', tea), { content: 'User likes green tea', memory_type: 'Semantic', importance: 0.5, session_id: null, metadata: {} })
    t.equal(await store.getMemory('x', tea), null)
    t.same((await store.searchMemories('o', agent.id, { query: 'green tea!', userId: 'u', limit: 10 })).map((m) => m.id), [newer, tea, paris],
      'best match first, newer first among equals, this user only')
    t.same(await store.searchMemories('o', agent.id, { query: 'nothing matches', userId: 'u', limit: 10 }), [])
    t.same(await store.searchMemories('o', agent.id, { query: '*) | & !', userId: 'u', limit: 10 }), [], 'syntax is not a query')
    t.same((await store.listMemories('o', { agentId: agent.id, limit: 10, offset: 0 })).memories.length, 4)
    t.same((await store.listMemories('o', { agentId: agent.id, userId: 'other-user', limit: 10, offset: 0 })).memories.length, 1)
    t.same((await store.listMemories('o', { agentId: agent.id, userId: 'u', limit: 1, offset: 1 })).memories.map((m) => m.id), [paris])
    t.same(await store.memoryVectors('o', agent.id, 'u', 10), [{ id: paris, embedding: [0, 1] }, { id: tea, embedding: [1, 0] }])
    t.same((await store.getMemoriesByIds('o', [paris, 'mem-none', tea])).map((m) => m.id), [paris, tea])
    t.same(await store.getMemoriesByIds('x', [tea]), [])

    t.match(await store.updateMemory('o', tea, { importance: 0.9 }), { importance: 0.9, content: 'User likes green tea' })
    t.same((await store.memoryVectors('o', agent.id, 'u', 10)).find((v) => v.id === tea)?.embedding, [1, 0], 'kept: text unchanged')
    await store.updateMemory('o', tea, { content: 'User likes oolong' })
    t.notOk((await store.memoryVectors('o', agent.id, 'u', 10)).some((v) => v.id === tea), 'dropped: text changed without a vector')
    await store.updateMemory('o', tea, { content: 'User likes oolong tea', embedding: [0.5, 0.5] })
    t.same((await store.memoryVectors('o', agent.id, 'u', 10)).find((v) => v.id === tea)?.embedding, [0.5, 0.5])
    t.same((await store.searchMemories('o', agent.id, { query: 'oolong', userId: 'u', limit: 10 })).map((m) => m.id), [tea], 'the index follows')
    t.equal(await store.updateMemory('x', tea, { content: 'no' }), null)
    t.notOk(await store.deleteMemory('x', tea))
    t.ok(await store.deleteMemory('o', tea))
    t.same(await store.searchMemories('o', agent.id, { query: 'oolong', userId: 'u', limit: 10 }), [])
    await store.deleteAgent('o', agent.id)
    t.same(await store.listMemories('o', { agentId: agent.id, limit: 10, offset: 0 }), { memories: [], total: 0 }, 'gone with their agent')
  })
}

t.test('postgres: migrations are idempotent across instances', async (t) => {
  const url = await freshSchema(t)
  const [a, b] = await Promise.all([PostgresStore.open({ connectionString: url }), PostgresStore.open({ connectionString: url })])
  t.teardown(async () => { await a.close(); await b.close() })
  const agent = await a.createAgent('o', { name: 'shared' })
  t.same(await b.getAgent('o', agent.id), agent, 'both instances see one database')
  await t.rejects(PostgresStore.open({ connectionString: url.replace(/search_path%3D\w+/, 'search_path%3Dno_such_schema') }), 'a schema it cannot create in fails start-up')
})

t.test('the server runs on PostgreSQL when DATABASE_URL says so', async (t) => {
  const url = await freshSchema(t)
  const { stream, createAgent, call, app } = await startApp(t, { databaseUrl: url })
  t.equal(app.store.kind, 'postgres')
  const agentId = await createAgent('org-a')
  const client = stream('org-a', agentId, { message: 'Hi, my name is Ada', session_id: 's' })
  await client.ended
  t.equal(client.last()?.chunk_type, 'done')
  t.match(client.events.at(-2)?.json, { memories_count: 1 })
  t.equal(((await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=s`)).body.data as unknown[]).length, 2)
  t.match((await call('org-a', 'GET', `/api/v1/agents/${agentId}/memories/search?q=name`)).body.data, [{ content: "User's name is Ada" }])
})

for (const [name, open] of BACKENDS) {
  t.test(`${name}: API keys are stored by hash, listed per org, revoked once, touched`, async (t) => {
    const store = await open(t)
    t.teardown(() => store.close())
    const key = await store.createApiKey({ organization_id: 'o', name: 'ci', roles: ['admin'], expires_at: null, key_hash: 'h1' })
    t.match(key, { id: /^key-/, organization_id: 'o', name: 'ci', roles: ['admin'], last_used_at: null, expires_at: null, revoked_at: null })
    t.notOk('key_hash' in key, 'the hash is not handed around')
    t.same(await store.findApiKey('h1'), key)
    t.equal(await store.findApiKey('h2'), null)
    await store.createApiKey({ organization_id: 'other', name: 'x', roles: [], expires_at: '2030-01-01T00:00:00.000Z', key_hash: 'h3' })
    t.same((await store.listApiKeys('o')).map((k) => k.id), [key.id])
    await store.touchApiKey(key.id, '2026-12-01T00:00:00.000Z')
    t.equal((await store.findApiKey('h1'))?.last_used_at, '2026-12-01T00:00:00.000Z')
    t.notOk(await store.revokeApiKey('other', key.id), 'not by another org')
    t.ok(await store.revokeApiKey('o', key.id))
    t.notOk(await store.revokeApiKey(null, key.id), 'once')
    t.match(await store.findApiKey('h1'), { revoked_at: String })
    await t.rejects(store.createApiKey({ organization_id: 'o', name: 'dup', roles: [], expires_at: null, key_hash: 'h1' }), 'a hash is unique')
  })
}
