// Inside an org, a plain user is confined to its own sub; a principal with an admin role acts
// for and reads every user of its own org; no one reaches another org. On SQLite and PostgreSQL.
import t, { type Test } from 'tap'
import { startApp, type TestApp } from '../helpers/server.js'
import { freshSchema } from '../helpers/postgres.js'
import { StreamClient } from '../helpers/sse-client.js'

const stores: Record<string, (t: Test) => Promise<string>> = {
  sqlite: async () => 'sqlite::memory:',
  postgres: async (t) => await freshSchema(t)
}

const alice = { org: 'org-a', sub: 'alice' }
const bob = { org: 'org-a', sub: 'bob' }
const admin = { org: 'org-a', sub: 'backend', roles: ['admin'] }
const foreignAdmin = { org: 'org-b', sub: 'other-backend', roles: ['admin'] }

type Who = { org: string, sub: string, roles?: string[] }
const streamAs = (app: TestApp, who: Who, agentId: string, body: unknown): StreamClient =>
  new StreamClient(`${app.url}/api/v1/agents/${agentId}/chat/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${app.token(who.org, who.sub, who.roles)}` },
    body: JSON.stringify(body)
  })

for (const [kind, database] of Object.entries(stores)) {
  t.test(`${kind}: a plain user sees and acts only as itself; an admin acts for its org's users`, async (t) => {
    const app = await startApp(t, { databaseUrl: await database(t), streamDetachGraceMs: 5000, builtinTokenDelayMs: 30 })
    const { callAs } = app
    const agentId = (await callAs(admin, 'POST', '/api/v1/agents', { name: 'shared' })).body.data as { id: string }
    const agent = agentId.id
    const mems = `/api/v1/agents/${agent}/memories`

    // Each user chats and saves a memory of their own.
    for (const who of [alice, bob]) {
      const s = streamAs(app, who, agent, { message: `hello from ${who.sub}`, session_id: 'shared-session' })
      await s.ended
      t.equal(s.last()?.chunk_type, 'done')
      t.equal((await callAs(who, 'POST', mems, { content: `${who.sub} likes tea` })).status, 201)
    }
    const bobsMemory = ((await callAs(bob, 'GET', mems)).body.data as Array<{ id: string }>)[0]?.id as string

    const history = async (who: Who, query = ''): Promise<string[]> =>
      ((await callAs(who, 'GET', `/api/v1/agents/${agent}/chat/history?session_id=shared-session${query}`)).body.data as Array<{ content: string }>).map((m) => m.content)
    t.same(await history(alice), ['hello from alice', 'You said: hello from alice'], 'alice sees her own turn only, though bob used the same session id')
    t.same((await history(admin)).length, 4, 'an admin sees both users')
    t.same(await history(admin, '&user_id=bob'), ['hello from bob', 'You said: hello from bob'], 'or one user')
    t.same(((await callAs(alice, 'GET', mems)).body.data as Array<{ content: string }>).map((m) => m.content), ['alice likes tea'])
    t.equal(((await callAs(admin, 'GET', mems)).body.data as unknown[]).length, 2)

    const forbidden: Array<[string, string, string, unknown]> = [
      ['chat as bob', 'POST', `/api/v1/agents/${agent}/chat`, { message: 'hi', user_id: 'bob' }],
      ['stream as bob', 'POST', `/api/v1/agents/${agent}/chat/stream`, { message: 'hi', user_id: 'bob' }],
      ['a memory for bob', 'POST', mems, { content: 'planted', user_id: 'bob' }],
      ["bob's memories", 'GET', `${mems}?user_id=bob`, undefined],
      ["search bob's memories", 'GET', `${mems}/search?q=tea&user_id=bob`, undefined],
      ["bob's history", 'GET', `/api/v1/agents/${agent}/chat/history?user_id=bob`, undefined]
    ]
    for (const [name, method, path, body] of forbidden) {
      const res = await callAs(alice, method, path, body)
      t.equal(res.status, 403, name)
      t.equal(res.body.code, 'FORBIDDEN', name)
    }
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const res = await callAs(alice, method, `/api/v1/memories/${bobsMemory}`, method === 'PUT' ? { content: 'overwritten' } : undefined)
      t.equal(res.status, 404, `${method} bob's memory by id answers like a missing one`)
    }
    t.equal(((await callAs(bob, 'GET', `/api/v1/memories/${bobsMemory}`)).body.data as { content: string }).content, 'bob likes tea', 'untouched')

    // The admin acts for bob, within its org only.
    const asBob = await callAs(admin, 'POST', `/api/v1/agents/${agent}/chat`, { message: 'on behalf', user_id: 'bob' })
    t.equal(asBob.status, 200)
    t.ok((await history(admin, '&user_id=bob')).length >= 2)
    t.equal((await callAs(admin, 'PUT', `/api/v1/memories/${bobsMemory}`, { content: 'bob likes oolong' })).status, 200)
    t.equal((await callAs(foreignAdmin, 'GET', `/api/v1/memories/${bobsMemory}`)).status, 404, 'an admin of another org reaches nothing')
    t.equal((await callAs(foreignAdmin, 'GET', `${mems}?user_id=bob`)).status, 404)

    // Streams: only the stream's own user (or an admin of its org) reads or cancels it.
    const live = streamAs(app, bob, agent, { message: 'a long answer with many words to stream slowly' })
    await live.untilEvents(2)
    const id = String(live.events[0]?.json.stream_id)
    for (const [who, status] of [[alice, 404], [foreignAdmin, 404]] as Array<[Who, number]>) {
      t.equal((await callAs(who, 'DELETE', `/api/v1/streams/${id}`)).status, status, `${who.sub} cannot cancel bob's stream`)
      const read = new StreamClient(`${app.url}/api/v1/streams/${id}`, { method: 'GET', headers: { authorization: `Bearer ${app.token(who.org, who.sub, who.roles)}` } })
      t.equal((await read.json()).code, 'NOT_FOUND', `${who.sub} cannot read it`)
    }
    const watched = new StreamClient(`${app.url}/api/v1/streams/${id}`, { method: 'GET', headers: { authorization: `Bearer ${app.token(admin.org, admin.sub, admin.roles)}` } })
    await watched.untilEvents(2)
    t.equal(watched.status, 200, 'the admin reads it')
    t.equal((await callAs(admin, 'DELETE', `/api/v1/streams/${id}`)).status, 204, 'and cancels it')
    await live.ended
    t.match(live.last(), { chunk_type: 'error', code: 'cancelled' })
  })
}

t.test('ADMIN_ROLES names the roles that act for other users; a plain bearer scheme in any case', async (t) => {
  const app = await startApp(t, { adminRoles: 'service, ops' })
  const agentId = await app.createAgent('org-a')
  const mems = `/api/v1/agents/${agentId}/memories`
  t.equal((await app.callAs({ org: 'org-a', sub: 's', roles: ['admin'] }, 'GET', `${mems}?user_id=bob`)).status, 403, 'admin is no longer one')
  t.equal((await app.callAs({ org: 'org-a', sub: 's', roles: ['ops'] }, 'GET', `${mems}?user_id=bob`)).status, 200)
  for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
    const res = new StreamClient(`${app.url}${mems}`, { method: 'GET', headers: { authorization: `${scheme} ${app.token('org-a')}` } })
    await res.ended
    t.equal(res.status, 200, `${scheme} is the Bearer scheme (RFC 9110 §11.1)`)
  }
})
