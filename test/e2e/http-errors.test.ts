import t, { type Test } from 'tap'
import { createSigner } from 'fast-jwt'
import { SqliteStore } from '../../lib/store/sqlite.js'
import { startApp, SECRET } from '../helpers/server.js'
import { gzipSync } from 'node:zlib'
import { request, StreamClient } from '../helpers/sse-client.js'
import { assertSettled, timerCount, within } from '../helpers/settle.js'
import { RawConnection, rawExchange } from '../helpers/raw.js'

const ERROR_KEYS = ['code', 'message', 'details', 'timestamp']

t.test('bad requests get a status and the JSON error body, never a crash', async (t) => {
  const { app, url, stream, createAgent, token } = await startApp(t)
  const timersBefore = timerCount()
  const agentId = await createAgent('org-a')
  const cases: Array<[string, string | undefined, string, number, string]> = [
    ['malformed JSON', 'application/json', '{"message": ', 400, 'BAD_REQUEST'],
    ['empty body', 'application/json', '', 400, 'BAD_REQUEST'],
    ['message missing', 'application/json', '{"stream": true}', 400, 'VALIDATION_ERROR'],
    ['message empty', 'application/json', '{"message": ""}', 400, 'VALIDATION_ERROR'],
    ['message too long', 'application/json', JSON.stringify({ message: 'x'.repeat(100_001) }), 400, 'VALIDATION_ERROR'],
    ['message wrong type', 'application/json', '{"message": 42}', 400, 'VALIDATION_ERROR'],
    ['metadata not an object', 'application/json', '{"message": "hi", "metadata": []}', 400, 'VALIDATION_ERROR'],
    ['body is an array', 'application/json', '[]', 400, 'VALIDATION_ERROR'],
    ['text/plain', 'text/plain', '{"message":"hi"}', 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['no content type', undefined, '{"message":"hi"}', 415, 'UNSUPPORTED_MEDIA_TYPE']
  ]
  for (const [name, type, body, status, code] of cases) {
    const headers: Record<string, string> = { authorization: `Bearer ${token('org-a')}`, 'content-type': type ?? '' }
    const client = stream('org-a', agentId, body, { headers })
    const json = await client.json()
    t.equal(client.status, status, `${name}: status`)
    t.equal(json.code, code, `${name}: code`)
    t.same(Object.keys(json), ERROR_KEYS, `${name}: body keys`)
    t.notOk(Number.isNaN(Date.parse(json.timestamp as string)), `${name}: timestamp`)
  }
  const validation = await stream('org-a', agentId, '{"message": 42}').json()
  t.same(validation.details, [{ path: '/message', message: 'must be string' }])

  const charset = stream('org-a', agentId, '{"message":"hi"}', { headers: { 'content-type': 'application/json; charset=utf-8' } })
  await client(charset)
  t.equal(charset.status, 200, 'a charset parameter is fine')

  async function client (c: typeof charset): Promise<void> { await c.ended }
  t.ok(url)
  await assertSettled(t, app, timersBefore)
})

t.test('a body over the limit is refused with 413 without reading it all', async (t) => {
  const { app, stream, createAgent, url, token } = await startApp(t, { bodyLimitBytes: 1024 })
  const timersBefore = timerCount()
  const agentId = await createAgent('org-a')
  const declared = stream('org-a', agentId, JSON.stringify({ message: 'x'.repeat(2000) }))
  t.equal((await declared.json()).code, 'PAYLOAD_TOO_LARGE')
  t.equal(declared.status, 413)
  t.equal(declared.headers.connection, 'close')

  // Chunked, no Content-Length: refused once it passes the limit, while the client is still sending.
  const chunked = new RawConnection(t, url)
  const { socket } = chunked
  socket.write(`POST /api/v1/agents/${agentId}/chat/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
    `Authorization: Bearer ${token('org-a')}\r\nTransfer-Encoding: chunked\r\n\r\n`)
  const piece = 'x'.repeat(600)
  for (let i = 0; i < 4 && !socket.destroyed && chunked.received === ''; i++) {
    socket.write(`${piece.length.toString(16)}\r\n${piece}\r\n`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  await within(chunked.closed, 5000, 'the server to close')
  const answer = chunked.received
  t.match(answer, /^HTTP\/1.1 413/)
  t.match(answer, /PAYLOAD_TOO_LARGE/)
  await assertSettled(t, app, timersBefore)
})

t.test('authentication: missing, malformed, wrong key, alg none, expired, not yet valid, missing claims', async (t) => {
  const { app, stream, createAgent } = await startApp(t, { jwtIssuer: 'agentmem', jwtAudience: 'agentmem-stream' })
  const timersBefore = timerCount()
  const agentId = await createAgent('org-a').catch(() => null)
  t.equal(agentId, null, 'a token without the configured iss/aud is refused')
  const sign = (payload: Record<string, unknown>, opts: Record<string, unknown> = {}): string =>
    createSigner({ key: SECRET, iss: 'agentmem', aud: 'agentmem-stream', expiresIn: 60_000, ...opts })(payload)
  const good = sign({ sub: 'u1', org_id: 'org-a' })
  const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')
  const payload = Buffer.from(JSON.stringify({ sub: 'u1', org_id: 'org-a', exp: Math.floor(Date.now() / 1000) + 60, iss: 'agentmem', aud: 'agentmem-stream' })).toString('base64url')
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['no header', {}, /Missing bearer token/],
    ['not bearer', { authorization: `Basic ${good}` }, /Missing bearer token/],
    ['garbage', { authorization: 'Bearer not.a.jwt' }, /Invalid token/],
    ['wrong key', { authorization: `Bearer ${createSigner({ key: 'another-secret-another-secret-1234', iss: 'agentmem', aud: 'agentmem-stream', expiresIn: 60_000 })({ sub: 'u1', org_id: 'org-a' })}` }, /Invalid token/],
    ['alg none', { authorization: `Bearer ${header}.${payload}.` }, /Invalid token/],
    ['HS512 with the right secret', { authorization: `Bearer ${sign({ sub: 'u1', org_id: 'org-a' }, { algorithm: 'HS512' })}` }, /Invalid token/],
    ['expired', { authorization: `Bearer ${sign({ sub: 'u1', org_id: 'org-a', exp: Math.floor(Date.now() / 1000) - 10 }, { expiresIn: undefined })}` }, /Token expired/],
    ['not yet valid (nbf)', { authorization: `Bearer ${sign({ sub: 'u1', org_id: 'org-a', nbf: Math.floor(Date.now() / 1000) + 600 })}` }, /Invalid token|not yet/],
    ['no exp', { authorization: `Bearer ${sign({ sub: 'u1', org_id: 'org-a' }, { expiresIn: undefined })}` }, /Invalid token/],
    ['no org_id', { authorization: `Bearer ${sign({ sub: 'u1' })}` }, /Invalid token/],
    ['org_id not a string', { authorization: `Bearer ${sign({ sub: 'u1', org_id: 7 })}` }, /sub and org_id/],
    ['wrong issuer', { authorization: `Bearer ${sign({ sub: 'u1', org_id: 'org-a' }, { iss: 'someone-else' })}` }, /Invalid token/],
    ['wrong audience', { authorization: `Bearer ${sign({ sub: 'u1', org_id: 'org-a' }, { aud: 'other' })}` }, /Invalid token/]
  ]
  for (const [name, headers, message] of cases) {
    const client = stream('org-a', 'agent-x', { message: 'hi' }, { headers: { authorization: '', ...headers } })
    const body = await client.json()
    t.equal(client.status, 401, `${name}: 401`)
    t.equal(client.headers['www-authenticate'], 'Bearer', `${name}: WWW-Authenticate`)
    t.match(body, { code: 'UNAUTHORIZED', message }, name)
  }
  const ok = stream('org-a', 'agent-missing', { message: 'hi' }, { headers: { authorization: `Bearer ${good}` } })
  t.equal((await ok.json()).code, 'NOT_FOUND', 'a valid token gets past auth')
  await assertSettled(t, app, timersBefore)
})

t.test('tenants: another org\'s agent is a 404 indistinguishable from a missing one', async (t) => {
  const { app, stream, createAgent, call } = await startApp(t)
  const timersBefore = timerCount()
  const agentA = await createAgent('org-a')
  const foreign = stream('org-b', agentA, { message: 'hi' })
  const missing = stream('org-b', 'agent-does-not-exist', { message: 'hi' })
  const [f, m] = [await foreign.json(), await missing.json()]
  t.equal(foreign.status, 404)
  t.equal(missing.status, 404)
  t.same({ ...f, timestamp: null }, { ...m, timestamp: null })
  for (const [method, path, body] of [
    ['GET', `/api/v1/agents/${agentA}`, undefined],
    ['PUT', `/api/v1/agents/${agentA}`, { name: 'stolen' }],
    ['DELETE', `/api/v1/agents/${agentA}`, undefined],
    ['POST', `/api/v1/agents/${agentA}/chat`, { message: 'hi' }],
    ['GET', `/api/v1/agents/${agentA}/chat/history`, undefined]
  ] as const) {
    const res = await call('org-b', method, path, body)
    t.equal(res.status, 404, `${method} ${path} from another org`)
  }
  t.same((await call('org-b', 'GET', '/api/v1/agents')).body.data, [], 'org-b lists nothing')
  t.equal((await call('org-a', 'GET', `/api/v1/agents/${agentA}`)).status, 200, 'owner still sees it')
  await assertSettled(t, app, timersBefore)
})

t.test('routing: unknown paths 404, wrong methods 405 with Allow, odd encodings 400', async (t) => {
  const { app, url, token } = await startApp(t)
  const timersBefore = timerCount()
  const auth = { authorization: `Bearer ${token('org-a')}` }
  const unknown = await request(`${url}/nope`, { method: 'GET', headers: auth })
  t.equal(unknown.status, 404)
  t.equal(JSON.parse(unknown.raw).code, 'NOT_FOUND')
  const wrong = await request(`${url}/api/v1/agents/abc/chat/stream`, { method: 'GET', headers: auth })
  t.equal(wrong.status, 405)
  t.equal(wrong.headers.allow, 'POST')
  const agents = await request(`${url}/api/v1/agents`, { method: 'PATCH', headers: auth })
  t.equal(agents.headers.allow, 'POST, GET, HEAD')
  const bad = await request(`${url}/api/v1/agents/%E0%A4%A`, { method: 'GET', headers: auth })
  t.equal(bad.status, 400)
  const traversal = await request(`${url}/api/v1/agents/..%2F..%2Fetc%2Fpasswd`, { method: 'GET', headers: auth })
  t.equal(traversal.status, 404)
  await assertSettled(t, app, timersBefore)
})

t.test('requests the HTTP parser rejects still get the JSON error body', async (t) => {
  const { app, url, createAgent, token } = await startApp(t)
  const timersBefore = timerCount()
  const agentId = await createAgent('org-a')
  const path = `/api/v1/agents/${agentId}`
  const cases: Array<[string, string, number, string]> = [
    ['oversized header', `GET ${path} HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ['huge token', `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ['too many headers in total', `GET ${path} HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'v'.repeat(60)}\r\n`).join('')}\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ['garbage request line', 'NOT A REQUEST\r\n\r\n', 400, 'BAD_REQUEST'],
    ['conflicting Content-Length', `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, 400, 'BAD_REQUEST'],
    ['Content-Length with chunked', `POST ${path}/chat/stream HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'BAD_REQUEST'],
    ['NUL in a header value', `GET ${path} HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n`, 400, 'BAD_REQUEST'],
    ['CR alone in a header', `GET ${path} HTTP/1.1\r\nHost: x\r\nX-A: a\rInjected: 1\r\n\r\n`, 400, 'BAD_REQUEST']
  ]
  for (const [name, text, status, code] of cases) {
    const answer = await rawExchange(t, url, text)
    t.equal(answer.status, status, `${name}: status`)
    t.equal(answer.body?.code, code, `${name}: code`)
    t.same(Object.keys(answer.body ?? {}), ERROR_KEYS, `${name}: body keys`)
  }

  // Duplicate Authorization headers: Node keeps the first one, and so does the server.
  const good = `Bearer ${token('org-a')}`
  const first = await rawExchange(t, url, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: ${good}\r\nAuthorization: Bearer junk\r\n\r\n`)
  t.equal(first.status, 200, 'a valid first Authorization is used')
  const second = await rawExchange(t, url, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer junk\r\nAuthorization: ${good}\r\n\r\n`)
  t.equal(second.status, 401, 'a valid second one does not rescue an invalid first')

  // A client that resets in the middle of its headers: nobody to answer, nothing breaks.
  const { socket } = new RawConnection(t, url)
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-Partial: `)
  await new Promise((resolve) => setTimeout(resolve, 20))
  socket.resetAndDestroy()
  const health = await request(`${url}/healthz`, { method: 'GET' })
  t.equal(health.status, 200, 'the server goes on serving')
  await assertSettled(t, app, timersBefore)
})

t.test('a client that sends its request too slowly gets 408 and loses the connection', async (t) => {
  const { app, url, createAgent } = await startApp(t, { headersTimeoutMs: 300 })
  const timersBefore = timerCount()
  const agentId = await createAgent('org-a')
  const slow = new RawConnection(t, url)
  // Headers trickle in, never finished.
  slow.socket.write(`POST /api/v1/agents/${agentId}/chat/stream HTTP/1.1\r\nHost: x\r\n`)
  const drip = setInterval(() => slow.socket.write('X-Drip: 1\r\n'), 50)
  await within(slow.closed, 5000, 'the server to give up on the headers')
  clearInterval(drip)
  const raw = slow.received
  t.match(raw, /^HTTP\/1.1 408 /)
  t.match(JSON.parse(raw.split('\r\n\r\n')[1] as string), { code: 'REQUEST_TIMEOUT', details: null })
  await assertSettled(t, app, timersBefore)
})

t.test('tenants: a foreign id and a missing one take the same path through the store, so no timing tells them apart', async (t) => {
  // The real store, with every call recorded: what differs in work is what could differ in time.
  const calls: string[] = []
  const inner = new SqliteStore(':memory:')
  const store = new Proxy(inner, {
    get (target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        calls.push(String(prop))
        return value.apply(target, args)
      }
    }
  })
  const { app, createAgent, call } = await startApp(t, {}, { store })
  const timersBefore = timerCount()
  const agentA = await createAgent('org-a')
  const memory = await call('org-a', 'POST', `/api/v1/agents/${agentA}/memories`, { content: 'a fact', user_id: 'user-1' })
  const memoryA = (memory.body.data as { id: string }).id
  const routes: Array<[string, (id: string) => string, unknown]> = [
    ['GET', (id) => `/api/v1/agents/${id}`, undefined],
    ['PUT', (id) => `/api/v1/agents/${id}`, { name: 'x' }],
    ['POST', (id) => `/api/v1/agents/${id}/chat/stream`, { message: 'hi' }],
    ['GET', (id) => `/api/v1/agents/${id}/memories`, undefined],
    ['GET', (id) => `/api/v1/agents/${id}/memories/search?q=fact`, undefined],
    ['GET', (id) => `/api/v1/agents/${id}/chat/history`, undefined]
  ]
  const probe = async (method: string, path: string, body: unknown): Promise<{ calls: string[], status: number, body: unknown }> => {
    calls.length = 0
    const res = await call('org-b', method, path, body)
    return { calls: [...calls], status: res.status, body: { ...res.body, timestamp: null } }
  }
  for (const [method, path, body] of routes) {
    const foreign = await probe(method, path(agentA), body)
    const missing = await probe(method, path('agent-00000000-0000-0000-0000-000000000000'), body)
    t.equal(foreign.status, 404, `${method} ${path(':id')}: 404`)
    t.same(foreign, missing, `${method} ${path(':id')}: same store calls, same answer`)
  }
  for (const method of ['GET', 'PUT', 'DELETE']) {
    const foreign = await probe(method, `/api/v1/memories/${memoryA}`, method === 'PUT' ? { content: 'x' } : undefined)
    const missing = await probe(method, '/api/v1/memories/mem-00000000-0000-0000-0000-000000000000', method === 'PUT' ? { content: 'x' } : undefined)
    t.equal(foreign.status, 404)
    t.same(foreign, missing, `${method} /api/v1/memories/:id: same store calls, same answer`)
  }
  await assertSettled(t, app, timersBefore)
})

/** Writes `text`, collects the answer until `done(raw)` says it is complete or the socket closes. */
async function exchangeUntil (t: Test, url: string, text: string | string[], done: (raw: string) => boolean): Promise<{ raw: string, closed: Promise<void> }> {
  const connection = new RawConnection(t, url)
  for (const part of [text].flat()) connection.socket.write(part)
  return { raw: await connection.until(done), closed: connection.closed }
}

t.test('HTTP as RFC 9110/9112 say: HEAD, absolute-form, Host, Connection: close, Expect: 100-continue, Content-Encoding', async (t) => {
  const { url, createAgent, token, stream } = await startApp(t)
  const agentId = await createAgent('org-a')
  const auth = `Authorization: Bearer ${token('org-a')}\r\n`

  const head = await rawExchange(t, url, `HEAD /api/v1/agents/${agentId} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}\r\n`)
  t.equal(head.status, 200, 'HEAD on a GET route')
  t.match(head.raw, /Content-Length: \d+/i)
  t.equal(head.raw.split('\r\n\r\n')[1], '', 'with no body')
  const headHealth = await rawExchange(t, url, 'HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(headHealth.status, 200)
  const post = stream('org-a', agentId, { message: 'hi' })
  await post.untilEvents(1)
  const streamId = String(post.events[0]?.json.stream_id)
  await post.ended
  const headStream = await rawExchange(t, url, `HEAD /api/v1/streams/${streamId} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}\r\n`)
  t.equal(headStream.status, 200, 'HEAD on a resume answers at once, without following')
  t.match(headStream.raw, /text\/event-stream/)
  t.match(headStream.raw, /\r\nVary: Accept-Encoding\r\n/, 'with the Vary a GET of the stream gets')
  const options = await rawExchange(t, url, `OPTIONS /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  t.match(options.raw, /Allow: GET, HEAD, OPTIONS/, 'Allow lists HEAD beside GET')
  const overlapping = await rawExchange(t, url, `OPTIONS /api/v1/memories/search HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  t.match(overlapping.raw, /Allow: POST, GET, PUT, DELETE, HEAD, OPTIONS/, 'every route that matches the path: the search route\'s POST and the :id route\'s methods, as find() serves them')
  const wrongMethod = await rawExchange(t, url, `PATCH /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  t.equal(wrongMethod.status, 405)
  t.same(wrongMethod.body?.details, { allow: ['GET', 'HEAD'] })

  const absolute = await rawExchange(t, url, `GET ${url}/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  t.equal(absolute.status, 200, 'an absolute-form target is routed by its path')
  const asterisk = await rawExchange(t, url, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(asterisk.status, 404, 'the asterisk form names no route')
  t.equal(asterisk.body?.code, 'NOT_FOUND')
  const absoluteRoot = await rawExchange(t, url, `GET http://127.0.0.1?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  t.equal(absoluteRoot.status, 404, 'an absolute-form target without a path is the root (no route here)')
  t.equal(absoluteRoot.body?.code, 'NOT_FOUND')

  const noHost = await rawExchange(t, url, 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n')
  t.equal(noHost.status, 400, 'HTTP/1.1 without Host')
  t.equal(noHost.body?.code, 'BAD_REQUEST')
  t.same(Object.keys(noHost.body ?? {}), ERROR_KEYS)
  t.equal((await rawExchange(t, url, 'GET /healthz HTTP/1.0\r\n\r\n')).status, 200, 'HTTP/1.0 needs none')

  // Connection: close on a stream: said in the header, and the socket closes right after the terminal event.
  const body = '{"message":"hi"}'
  const closing = await exchangeUntil(t, url, `POST /api/v1/agents/${agentId}/chat/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    (raw) => raw.includes('"chunk_type":"done"'))
  t.match(closing.raw, /\r\nConnection: close\r\n/i)
  await within(closing.closed, 1000, 'the server to close the connection after done')
  t.pass('closed after the terminal event')
  const kept = await exchangeUntil(t, url, `POST /api/v1/agents/${agentId}/chat/stream HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    (raw) => raw.includes('"chunk_type":"done"'))
  t.match(kept.raw, /\r\nConnection: keep-alive\r\n/i, 'kept alive when not asked to close')

  // Expect: 100-continue: refused on the headers, without 100 and without reading the body.
  const big = await exchangeUntil(t, url, `POST /api/v1/agents/${agentId}/chat HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n`,
    (raw) => raw.includes('}'))
  t.notMatch(big.raw, /100 Continue/)
  t.match(big.raw, /^HTTP\/1.1 413 /)
  t.match(big.raw, /"code":"PAYLOAD_TOO_LARGE"/)
  const anonymous = await exchangeUntil(t, url, `POST /api/v1/agents/${agentId}/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n`,
    (raw) => raw.includes('}'))
  t.match(anonymous.raw, /^HTTP\/1.1 401 /, 'a request that would be refused anyway is not asked for its body')
  const unknown = await exchangeUntil(t, url, `POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n`, (raw) => raw.includes('}'))
  t.match(unknown.raw, /^HTTP\/1.1 404 /)
  const fine = await exchangeUntil(t, url, [`POST /api/v1/agents/${agentId}/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`],
    (raw) => raw.includes('100 Continue'))
  t.match(fine.raw, /^HTTP\/1.1 100 Continue/, 'an acceptable request is asked for its body')
  const getWithExpect = await rawExchange(t, url, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n')
  t.match(getWithExpect.raw, /200 OK/, 'a GET with Expect needs no credentials it does not need anyway')

  const gz = new StreamClient(`${url}/api/v1/agents/${agentId}/chat`, {
    method: 'POST', headers: { authorization: `Bearer ${token('org-a')}`, 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(body)
  })
  t.equal((await gz.json()).code, 'UNSUPPORTED_MEDIA_TYPE')
  t.equal(gz.status, 415, 'a compressed request body is refused, not parsed as JSON')
  const identity = new StreamClient(`${url}/api/v1/agents/${agentId}/chat`, {
    method: 'POST', headers: { authorization: `Bearer ${token('org-a')}`, 'content-type': 'application/json', 'content-encoding': 'identity' }, body
  })
  await identity.ended
  t.equal(identity.status, 200, 'identity is no coding')
})
