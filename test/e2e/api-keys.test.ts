// Org API keys as AgentMem defines them: agm_ + 32 hex, stored as SHA-256, sent as X-API-Key
// or Authorization: Bearer agm_…, made and revoked by an org admin (HTTP) or the CLI.
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import http from 'node:http'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp, type TestApp } from '../helpers/server.js'
import { freshSchema } from '../helpers/postgres.js'
import { request } from '../helpers/sse-client.js'
import { until } from '../helpers/settle.js'
import { ApiKeyAuthenticator, hashApiKey } from '../../lib/auth/api-keys.js'
import { SqliteStore } from '../../lib/store/sqlite.js'

const run = promisify(execFile)
const admin = { org: 'org-a', sub: 'boss', roles: ['admin'] }

const stores: Record<string, (t: Test) => Promise<string>> = {
  sqlite: async () => 'sqlite::memory:',
  postgres: async (t) => await freshSchema(t)
}

const withKey = async (app: TestApp, headers: Record<string, string>, path = '/api/v1/agents'): Promise<{ status: number, body: Record<string, unknown>, headers: Record<string, unknown> }> => {
  const c = await request(`${app.url}${path}`, { method: 'GET', headers })
  return { status: c.status, body: c.raw === '' ? {} : JSON.parse(c.raw), headers: c.headers }
}

for (const [kind, database] of Object.entries(stores)) {
  t.test(`${kind}: an admin makes keys; a key authenticates as its org with its roles; revoked, expired and unknown keys get 401`, async (t) => {
    const app = await startApp(t, { databaseUrl: await database(t), apiKeyCacheTtlMs: 200 })
    const { callAs, call } = app
    const agentId = await app.createAgent('org-a')
    const made = await callAs(admin, 'POST', '/api/v1/api-keys', { name: 'backend', roles: ['admin'] })
    t.equal(made.status, 201)
    const created = made.body.data as { id: string, key: string, name: string, roles: string[], organization_id: string }
    t.match(created, { id: /^key-/, key: /^agm_[0-9a-f]{32}$/, name: 'backend', roles: ['admin'], organization_id: 'org-a', expires_at: null })

    const viaHeader = await withKey(app, { 'x-api-key': created.key })
    t.equal(viaHeader.status, 200, 'X-API-Key')
    t.same((viaHeader.body.data as Array<{ id: string }>).map((a) => a.id), [agentId], 'its org\'s agents')
    t.equal((await withKey(app, { authorization: `Bearer ${created.key}` })).status, 200, 'Authorization: Bearer agm_… (AgentMem\'s SDKs)')
    const asKey = await request(`${app.url}/api/v1/agents/${agentId}/chat`, { method: 'POST', headers: { 'x-api-key': created.key, 'content-type': 'application/json' }, body: JSON.stringify({ message: 'hi', user_id: 'alice' }) })
    t.equal(asKey.status, 200, 'an admin key acts for a user of its org')
    const history = (await callAs(admin, 'GET', `/api/v1/agents/${agentId}/chat/history?user_id=alice`)).body.data as unknown[]
    t.equal(history.length, 2)

    const listed = await callAs(admin, 'GET', '/api/v1/api-keys')
    t.equal(listed.status, 200)
    const [entry] = listed.body.data as Array<Record<string, unknown>>
    t.match(entry, { id: created.id, name: 'backend', last_used_at: String })
    t.notMatch(JSON.stringify(listed.body), /agm_|key_hash/, 'never the secret, nor its hash')

    const plainKey = (await callAs(admin, 'POST', '/api/v1/api-keys', {})).body.data as { key: string, id: string, name: string, roles: string[] }
    t.match(plainKey, { name: 'api key', roles: [] })
    t.equal((await withKey(app, { 'x-api-key': plainKey.key }, `/api/v1/agents/${agentId}/memories?user_id=bob`)).status, 403, 'a key without an admin role acts as itself only')
    t.equal((await withKey(app, { 'x-api-key': created.key }, '/api/v1/api-keys')).status, 403, 'a key cannot manage keys')
    t.equal((await call('org-a', 'POST', '/api/v1/api-keys', {})).status, 403, 'nor can a plain user')
    t.equal((await callAs({ org: 'org-b', sub: 'x', roles: ['admin'] }, 'DELETE', `/api/v1/api-keys/${created.id}`)).status, 404, 'nor another org\'s admin')
    t.match((await withKey(app, { 'x-api-key': created.key }, `/api/v1/agents/${await app.createAgent('org-b')}`)), { status: 404 }, 'nothing of another org')

    const refused: Array<[string, Record<string, string>]> = [
      ['unknown', { 'x-api-key': `agm_${'0'.repeat(32)}` }],
      ['malformed', { 'x-api-key': 'agm_short' }],
      ['unknown as bearer', { authorization: `Bearer agm_${'f'.repeat(32)}` }]
    ]
    for (const [name, headers] of refused) {
      const res = await withKey(app, headers)
      t.equal(res.status, 401, name)
      t.equal(res.body.code, 'UNAUTHORIZED', name)
      t.equal(res.body.message, 'Invalid API key', `${name}: one answer for every bad key`)
      t.equal(res.headers['www-authenticate'], 'Bearer', name)
    }

    t.equal((await callAs(admin, 'DELETE', `/api/v1/api-keys/${created.id}`)).status, 200)
    t.equal((await callAs(admin, 'DELETE', `/api/v1/api-keys/${created.id}`)).status, 404, 'revoked once')
    await until(async () => (await withKey(app, { 'x-api-key': created.key })).status === 401, 2000, 'the revoked key to stop working')
    t.pass('a revoked key stops working within the cache TTL')

    const short = (await callAs(admin, 'POST', '/api/v1/api-keys', { ttl: '1s' })).body.data as { key: string, expires_at: string }
    t.ok(Date.parse(short.expires_at) > Date.now())
    t.equal((await withKey(app, { 'x-api-key': short.key })).status, 200)
    await sleep(1100)
    t.equal((await withKey(app, { 'x-api-key': short.key })).status, 401, 'an expired key')
    for (const bad of [{ ttl: '3 weeks' }, { roles: 'admin' }, { name: '' }]) {
      const res = await callAs(admin, 'POST', '/api/v1/api-keys', bad)
      t.equal(res.status, 400, JSON.stringify(bad))
      t.equal(res.body.code, 'VALIDATION_ERROR')
    }
  })
}

t.test('a key revoked through one instance stops working on the other within a few seconds', async (t) => {
  const databaseUrl = await freshSchema(t)
  const a = await startApp(t, { databaseUrl, apiKeyCacheTtlMs: 500 })
  const b = await startApp(t, { databaseUrl, apiKeyCacheTtlMs: 500 })
  const { key, id } = (await a.callAs(admin, 'POST', '/api/v1/api-keys', { name: 'shared' })).body.data as { key: string, id: string }
  t.equal((await withKey(b, { 'x-api-key': key })).status, 200, 'known on B')
  t.equal((await a.callAs(admin, 'DELETE', `/api/v1/api-keys/${id}`)).status, 200)
  const revokedAt = performance.now()
  await until(async () => (await withKey(b, { 'x-api-key': key })).status === 401, 3000, 'B to refuse the revoked key')
  t.comment(`B refused it ${Math.round(performance.now() - revokedAt)} ms after the revocation (cache TTL 500 ms)`)
})

t.test('the CLI creates, lists and revokes keys against DATABASE_URL, no server running', async (t) => {
  const dir = t.testdir()
  const env = { ...process.env, DATABASE_URL: `sqlite:${dir}/keys.db`, LOG_LEVEL: 'silent' }
  const cli = async (args: string[]): Promise<string> => (await run(process.execPath, [...process.execArgv, 'lib/cli.ts', ...args], { env })).stdout
  const out = await cli(['api-key', 'create', '--org', 'acme', '--name', 'deploy', '--roles', 'admin,ops', '--ttl', '90d'])
  const lines = out.trim().split('\n')
  const key = lines.at(-1) as string
  t.match(key, /^agm_[0-9a-f]{32}$/, 'the key is the last line of stdout')
  t.match(lines[0], /^created key-[0-9a-f-]+ for org acme, expires 20/)
  const listed = (await cli(['api-key', 'list', '--org', 'acme'])).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  t.match(listed, [{ name: 'deploy', roles: ['admin', 'ops'], organization_id: 'acme', revoked_at: null }])
  t.notMatch(JSON.stringify(listed), /agm_/)
  // The key works on a server over the same database, and only its hash was stored.
  const app = await startApp(t, { databaseUrl: `sqlite:${dir}/keys.db` })
  t.equal((await withKey(app, { 'x-api-key': key })).status, 200)
  t.ok(await app.app.store.findApiKey(hashApiKey(key)), 'stored by SHA-256')
  t.match(await cli(['api-key', 'revoke', listed[0]?.id as string]), /^revoked key-/)
  await t.rejects(cli(['api-key', 'revoke', listed[0]?.id as string]), /No active API key/, 'once')
  const bare = (await cli(['api-key', 'create', '--org', 'acme'])).trim().split('\n')
  t.match(bare[0], /^created key-[0-9a-f-]+ for org acme$/, 'no --ttl: it does not expire')
  t.match((await cli(['api-key', 'list', '--org', 'acme'])).trim().split('\n').map((l) => JSON.parse(l) as { roles: string[], name: string }).at(-1), { roles: [], name: 'api key', expires_at: null })
  await t.rejects(cli(['api-key', 'create']), /needs --org/)
  await t.rejects(cli(['api-key', 'rotate']), /api-key needs create/)
  await until(async () => (await withKey(app, { 'x-api-key': key })).status === 401, 10_000, 'the server to refuse the key the CLI revoked')
  t.pass('revoked by the CLI, refused by the server once its cache TTL (5 s by default) passed')
})

t.test('the lookup cache holds at most maxCached keys, the oldest going first, and trusts a lookup for its TTL', async (t) => {
  class Counting extends SqliteStore {
    lookups = 0
    override async findApiKey (hash: string): ReturnType<SqliteStore['findApiKey']> {
      this.lookups++
      return await super.findApiKey(hash)
    }
  }
  const store = new Counting(':memory:')
  t.teardown(() => store.close())
  const keys = new ApiKeyAuthenticator(store, { cacheTtlMs: 60_000, maxCached: 2, adminRoles: new Set(['admin']) })
  const secrets = ['a', 'b', 'c'].map((c) => `agm_${c.repeat(32)}`)
  for (const secret of secrets) await store.createApiKey({ organization_id: 'o', name: secret, roles: ['admin'], expires_at: null, key_hash: hashApiKey(secret) })
  t.match(await keys.authenticate(secrets[0] as string), { orgId: 'o', admin: true, userId: /^key:key-/ })
  await keys.authenticate(secrets[0] as string)
  t.equal(store.lookups, 1, 'a cached lookup is trusted')
  await keys.authenticate(secrets[1] as string)
  await keys.authenticate(secrets[2] as string)
  t.equal(store.lookups, 3)
  await keys.authenticate(secrets[0] as string)
  t.equal(store.lookups, 4, 'the oldest entry was evicted when a third key came')
  await t.rejects(keys.authenticate(`agm_${'d'.repeat(32)}`), { status: 401 })
  await t.rejects(keys.authenticate(`agm_${'d'.repeat(32)}`), { status: 401 })
  t.equal(store.lookups, 5, 'an unknown key is cached too: it costs one lookup per TTL, as a known one does')
})

t.test('a store that fails the key lookup behind Expect: 100-continue: the client is asked for its body, then gets a 500', async (t) => {
  class Failing extends SqliteStore {
    override async findApiKey (): ReturnType<SqliteStore['findApiKey']> { throw new Error('disk I/O error in findApiKey') }
  }
  const errors: unknown[] = []
  const app = await startApp(t, {}, { store: new Failing(':memory:'), onError: (err) => errors.push(err) })
  const body = '{"name":"x"}'
  const answer = await new Promise<{ status: number, continued: boolean, raw: string }>((resolve, reject) => {
    let continued = false
    const req = http.request(`${app.url}/api/v1/agents`, {
      method: 'POST', headers: { 'x-api-key': `agm_${'a'.repeat(32)}`, 'content-type': 'application/json', 'content-length': body.length, expect: '100-continue' }
    }, (res) => {
      let raw = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { raw += d })
      res.on('end', () => resolve({ status: res.statusCode as number, continued, raw }))
    })
    req.on('continue', () => { continued = true; req.end(body) })
    req.on('error', reject)
  })
  t.ok(answer.continued, 'the failure is not the client\'s: it was asked for its body')
  t.equal(answer.status, 500)
  t.equal(JSON.parse(answer.raw).code, 'INTERNAL_ERROR')
  t.match(errors, [{ message: /findApiKey/ }], 'and the cause was logged')
})
