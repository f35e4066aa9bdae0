import t from 'tap'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { scrape, startApp, startAppWithUpstream } from '../helpers/server.js'
import { assertSettled, timerCount, until, within } from '../helpers/settle.js'
import { RawConnection } from '../helpers/raw.js'
import { StreamClient } from '../helpers/sse-client.js'
import { SqliteStore } from '../../lib/store/sqlite.js'

const setup = startAppWithUpstream

t.test('per-tenant and global limits answer 429 with Retry-After before any work', async (t) => {
  const { stream, upstream, agentId, createAgent } = await setup(t, { streamMaxPerTenant: 2, streamMaxTotal: 3 })
  upstream.script = { tokens: ['x', 'y'], hangAfterTokens: 1 }
  const a1 = stream('org-a', agentId, { message: '1' })
  const a2 = stream('org-a', agentId, { message: '2' })
  await a1.untilEvents(2)
  await a2.untilEvents(2)
  const requestsBefore = upstream.requests.length
  const a3 = stream('org-a', agentId, { message: '3' })
  t.equal(a3.status === 0 ? (await a3.response()).status : a3.status, 429)
  t.equal(a3.headers['retry-after'], '1')
  t.match(await a3.json(), { code: 'QUOTA_EXCEEDED', details: { scope: 'tenant', limit: 2 } })
  t.equal(upstream.requests.length, requestsBefore, 'the refused stream never reached the upstream')

  const agentB = await createAgent('org-b')
  const b1 = stream('org-b', agentB, { message: 'b1' })
  await b1.untilEvents(2)
  const b2 = stream('org-b', agentB, { message: 'b2' })
  t.match(await b2.json(), { code: 'QUOTA_EXCEEDED', details: { scope: 'global', limit: 3 } })
  upstream.script = {}
  upstream.resume()
  await Promise.all([a1.ended, a2.ended, b1.ended])
  t.equal(a1.last()?.chunk_type, 'done')
  const after = stream('org-a', agentId, { message: 'after' })
  await after.ended
  t.equal(after.last()?.chunk_type, 'done', 'slots came back once the streams ended')
})

t.test('the slot is released exactly once after every kind of ending', async (t) => {
  const { app, stream, upstream, agentId, ends, call, url, token } = await setup(t, { streamMaxPerTenant: 1, streamIdleTimeoutMs: 80, streamFirstTokenTimeoutMs: 200 })
  const baseline = timerCount()
  let sentMark = 0
  const sentAtStart = (): number => sentMark
  const endings: Array<[string, () => Promise<void>, string]> = [
    ['done', async () => {
      upstream.script = {}
      await stream('org-a', agentId, { message: 'hi' }).ended
    }, 'done'],
    ['upstream dies', async () => {
      upstream.script = { dieAfterTokens: 1, tokenDelayMs: 20 }
      await stream('org-a', agentId, { message: 'hi' }).ended
    }, 'upstream_error'],
    ['idle timeout', async () => {
      upstream.script = { hangAfterTokens: 1 }
      await stream('org-a', agentId, { message: 'hi' }).ended
    }, 'timeout'],
    ['client disconnect', async () => {
      upstream.script = { hangAfterTokens: 1 }
      const c = stream('org-a', agentId, { message: 'hi' })
      await c.untilEvents(2)
      c.destroy()
    }, 'client_gone'],
    ['client disconnect while the upstream opens', async () => {
      upstream.script = { hangBeforeHeaders: true }
      const c = stream('org-a', agentId, { message: 'hi' })
      await until(() => app.streams().length === 1, 5000, 'the stream to take its slot')
      c.destroy()
    }, 'client_gone'],
    ['non-streaming client leaves', async () => {
      upstream.script = { hangAfterTokens: 1 }
      const c = new StreamClient(`${url}/api/v1/agents/${agentId}/chat`, {
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token('org-a')}` }, body: '{"message":"hi"}'
      })
      await until(() => upstream.sentTokens > sentAtStart(), 5000, 'the upstream to send a token')
      c.destroy()
    }, 'client_gone'],
    ['upstream refuses', async () => {
      upstream.script = { status: 503 }
      await stream('org-a', agentId, { message: 'hi' }).ended
    }, 'upstream_error'],
    ['non-streaming chat', async () => {
      upstream.script = {}
      t.equal((await call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'hi' })).status, 200)
    }, 'done']
  ]
  for (const [name, run, outcome] of endings) {
    const before = ends.length
    sentMark = upstream.sentTokens
    await run()
    await assertSettled(t, app, baseline)
    t.equal(ends.length, before + 1, `${name}: released once`)
    t.equal(ends.at(-1)?.outcome, outcome, `${name}: outcome`)
    upstream.script = {}
    const next = stream('org-a', agentId, { message: 'next' })
    await next.ended
    t.equal(next.last()?.chunk_type, 'done', `${name}: the tenant's single slot is free again`)
  }
  for (const [name, status] of [['bad body', 400], ['unknown agent', 404]] as const) {
    const c = name === 'bad body' ? stream('org-a', agentId, '{') : stream('org-a', 'agent-none', { message: 'x' })
    t.equal((await c.response()).status, status, name)
    await c.ended
  }
  t.same(app.streams(), [], 'early refusals hold no slot')
})

t.test('timeouts end the stream with an error chunk naming which one, and abort the upstream', async (t) => {
  const { stream, upstream, agentId, call, ends } = await setup(t, {
    streamFirstTokenTimeoutMs: 100, streamIdleTimeoutMs: 100, streamMaxDurationMs: 300
  })
  upstream.script = { firstTokenDelayMs: 1000 }
  const firstAborted = upstream.nextAbort()
  const first = stream('org-a', agentId, { message: 'hi' })
  await first.ended
  // The upstream may hear its request cut just after the client saw the stream end: count from then.
  await within(firstAborted, 5000, 'the upstream request to be aborted on the first-token timeout')
  t.same(first.types(), ['start', 'error'])
  t.match(first.last(), { chunk_type: 'error', code: 'first_token_timeout', content: /first token timeout: 100 ms/ })

  upstream.script = { tokens: ['a', 'b'], hangAfterTokens: 1 }
  const abortsBefore = upstream.clientAborts
  const aborted = upstream.nextAbort()
  const idle = stream('org-a', agentId, { message: 'hi' })
  await idle.ended
  t.same(idle.types(), ['start', 'content', 'error'])
  t.match(idle.last(), { code: 'idle_timeout', content: /idle timeout/ })
  await within(aborted, 5000, 'the upstream request to be aborted on the idle timeout')
  t.equal(upstream.clientAborts, abortsBefore + 1, 'upstream request aborted on idle timeout')

  upstream.script = { tokens: ['t'], forever: true, tokenDelayMs: 20 }
  const long = stream('org-a', agentId, { message: 'hi' })
  await long.ended
  t.match(long.last(), { code: 'max_duration_timeout' })
  t.ok(long.events.length > 3, 'tokens flowed until the total bound')

  upstream.script = { hangBeforeHeaders: true }
  const opening = stream('org-a', agentId, { message: 'hi' })
  t.equal((await opening.response()).status, 504, 'an upstream that never answers is a 504 before any SSE')
  t.match(await opening.json(), { code: 'UPSTREAM_TIMEOUT', details: { code: 'first_token_timeout', retryable: true, timeout: 'first_token', ms: 100 } })

  upstream.script = { tokens: ['a', 'b'], hangAfterTokens: 1 }
  const plain = await call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'hi' })
  t.equal(plain.status, 504)
  t.match(plain.body, { code: 'UPSTREAM_TIMEOUT', details: { code: 'idle_timeout' } })
  t.ok(ends.every((e) => e.outcome === 'timeout'), 'every one ended as a timeout')
})

t.test('keep-alive comments flow while the upstream is quiet, and stop with the stream', async (t) => {
  const { app, stream, upstream, agentId } = await setup(t, { streamKeepaliveMs: 20 })
  const baseline = timerCount()
  upstream.script = { tokens: ['a', 'b'], hangAfterTokens: 1 }
  const client = stream('org-a', agentId, { message: 'hi' })
  await client.until((c) => c.comments.length >= 3)
  t.ok(client.comments.every((c) => c.trim() === 'keep-alive'))
  t.match(client.raw, /\n\n: keep-alive\n/)
  t.notMatch(client.raw, /: keep-alive\n\n/, 'a keep-alive never ends a block')
  upstream.resume()
  await client.ended
  t.equal(client.last()?.chunk_type, 'done')
  await assertSettled(t, app, baseline)
})

t.test('keep-alive comments on the wire: one chunk of their own on HTTP/1.1, the bare comment on HTTP/1.0', async (t) => {
  const { app, upstream, agentId, url, token } = await setup(t, { streamKeepaliveMs: 20 })
  const baseline = timerCount()
  const body = JSON.stringify({ message: 'hi' })
  const opened = (version: string): RawConnection => {
    const connection = new RawConnection(t, url)
    connection.socket.write(`POST /api/v1/agents/${agentId}/chat/stream HTTP/${version}\r\nHost: x\r\nAuthorization: Bearer ${token('org-a')}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
    return connection
  }
  upstream.queue.push({ tokens: ['a', 'b'], hangAfterTokens: 1 }, { tokens: ['a', 'b'], hangAfterTokens: 1 })
  const chunked = opened('1.1')
  const bare = opened('1.0')
  const comment = ': keep-alive\n'
  const twice = (raw: string): boolean => raw.split(comment).length > 3
  await chunked.until(twice)
  await bare.until(twice)
  t.match(chunked.received, /^HTTP\/1.1 200[^]*\r\nTransfer-Encoding: chunked\r\n/)
  // Each comment a chunk of its own (13 bytes: d in hex) between the events' chunks.
  const chunkedTail = chunked.received.slice(chunked.received.indexOf(comment) - 5)
  t.match(chunkedTail, /^\r\nd\r\n: keep-alive\n\r\nd\r\n: keep-alive\n\r\n/, 'framed as chunks')
  t.match(bare.received, /^HTTP\/1.1 200[^]*\r\n\r\n[^]*"chunk_type":"content"[^]*\n\n: keep-alive\n: keep-alive\n/, 'unframed on HTTP/1.0')
  t.notMatch(bare.received, /\r\nd\r\n/, 'no chunk sizes on HTTP/1.0')
  upstream.resume()
  await chunked.until((raw) => raw.endsWith('\r\n0\r\n\r\n'))
  await bare.closed
  t.match(chunked.received, /"chunk_type":"done"[^]*\r\n0\r\n\r\n$/, 'the stream ends with done and the last chunk')
  t.match(bare.received, /"chunk_type":"done"/)
  await assertSettled(t, app, baseline)
})

t.test('client disconnect aborts the upstream before a 100 ms idle timer could', async (t) => {
  const { stream, upstream, agentId, ends, app } = await setup(t, { streamIdleTimeoutMs: 100 })
  upstream.script = { tokens: ['a', 'b'], hangAfterTokens: 1 }
  const client = stream('org-a', agentId, { message: 'hi' })
  await client.untilEvents(2)
  const aborted = upstream.nextAbort()
  const at = performance.now()
  client.destroy()
  await within(aborted, 5000, 'the upstream to see the abort')
  t.comment(`upstream saw the abort ${(performance.now() - at).toFixed(1)} ms after the disconnect`)
  await until(() => app.streams().length === 0, 5000, 'the stream to be released')
  t.equal(ends.at(-1)?.outcome, 'client_gone', 'the disconnect, not the 100 ms idle timeout, ended it')
  t.equal(upstream.clientAborts, 1)
})

t.test('a reader that stops reading pauses the upstream and is cut after the drain bound', async (t) => {
  // Keep-alive ticks often here, to check they skip a full buffer instead of piling onto it.
  const { app, stream, upstream, agentId, ends } = await setup(t, { streamDrainTimeoutMs: 4000, streamKeepaliveMs: 50 })
  upstream.script = { tokens: ['token '], forever: true }
  const client = stream('org-a', agentId, { message: 'hi' })
  await client.untilEvents(2)
  client.res?.pause()
  // Once the kernel buffers on the reader's side are full the server holds a socket buffer's worth...
  await until(() => (app.streams()[0]?.bufferedBytes ?? 0) > 0, 4000, 'the server saw the reader fall behind')
  // ...and then stops pulling, so the upstream stalls too once the buffers between them fill.
  let last = -1
  let stable = 0
  for (let i = 0; i < 60 && stable < 3; i++) {
    stable = upstream.sentTokens === last ? stable + 1 : 0
    last = upstream.sentTokens
    await sleep(100)
  }
  t.equal(stable, 3, `upstream paused after ${last} tokens`)
  const [info] = app.streams()
  t.ok(info !== undefined && info.bufferedBytes <= 64 * 1024 + 1024, `server buffers ${info?.bufferedBytes} bytes for this stream`)
  await upstream.nextAbort()
  await until(() => app.streams().length === 0, 10_000, 'the stuck stream to be released')
  t.equal(ends.at(-1)?.outcome, 'slow_consumer')
  t.equal(upstream.sentTokens, last, 'nothing more was pulled from the upstream')
  client.destroy()

  // A stuck reader that hangs up, or a stream cancelled by shutdown, ends the wait for drain at once.
  for (const [how, outcome] of [['hang up', 'client_gone'], ['shutdown', 'server_shutdown']] as const) {
    const stuck = stream('org-a', agentId, { message: how })
    await stuck.untilEvents(2)
    stuck.res?.pause()
    await until(() => (app.streams()[0]?.bufferedBytes ?? 0) > 0, 4000, `${how}: the server is waiting for drain`)
    if (how === 'hang up') stuck.destroy()
    else await app.close()
    await until(() => app.streams().length === 0, 5000, `${how}: stream released`)
    t.equal(ends.at(-1)?.outcome, outcome)
    stuck.destroy()
  }
})

t.test('a shutdown while the upstream is still opening answers 503', async (t) => {
  const { app, stream, upstream, agentId } = await setup(t)
  upstream.script = { hangBeforeHeaders: true }
  const client = stream('org-a', agentId, { message: 'hi' })
  await until(() => app.streams().length === 1 && upstream.requests.length === 1, 5000, 'the upstream to be opening')
  await app.close()
  t.equal((await client.response()).status, 503)
  t.match(await client.json(), { code: 'SERVICE_UNAVAILABLE' })
})

t.test('closing the server ends running streams with server_shutdown and refuses new requests', async (t) => {
  const { app, stream, upstream, agentId, ends, url, token } = await setup(t)
  upstream.script = { tokens: ['a', 'b'], hangAfterTokens: 1 }
  const client = stream('org-a', agentId, { message: 'hi' })
  await client.untilEvents(2)
  // A request already on the wire when the close starts is answered 503, not dropped.
  const { socket } = new RawConnection(t, url)
  await once(socket, 'connect')
  socket.write(`GET /api/v1/agents HTTP/1.1\r\nHost: x\r\n`)
  await sleep(50) // the partial request reaches the server before the close starts
  const closing = app.close()
  socket.write(`Authorization: Bearer ${token('org-a')}\r\n\r\n`)
  const [answer] = await once(socket, 'data') as [string]
  t.match(answer, /^HTTP\/1.1 503[\s\S]*SERVICE_UNAVAILABLE/)
  socket.destroy()
  await closing
  await client.ended
  t.match(client.last(), { chunk_type: 'error', code: 'server_shutdown' })
  t.equal(ends.at(-1)?.outcome, 'server_shutdown')
  t.same(app.streams(), [])
})

t.test('graceful close: streams that finish within SHUTDOWN_GRACE_MS end normally, the rest with server_shutdown', async (t) => {
  const { app, stream, upstream, agentId, ends } = await setup(t, { shutdownGraceMs: 400 })
  upstream.queue.push({ tokens: ['a', 'b', 'c', 'd'], tokenDelayMs: 30 }, { tokens: ['x', 'y'], hangAfterTokens: 1 })
  const quick = stream('org-a', agentId, { message: 'quick' })
  await quick.untilEvents(2)
  const stuck = stream('org-a', agentId, { message: 'stuck' })
  await stuck.untilEvents(2)
  await app.close()
  await Promise.all([quick.ended, stuck.ended])
  t.equal(quick.last()?.chunk_type, 'done', 'finished within the grace period')
  t.match(stuck.last(), { chunk_type: 'error', code: 'server_shutdown' })
  t.same(ends.map((e) => e.outcome).sort(), ['done', 'server_shutdown'])
})

t.test('a turn stopped once its reply is stored ends with done: a disconnect, a cancel or a shutdown cuts only the wait for extraction', async (t) => {
  const { app, stream, upstream, agentId, ends, call, url, token } = await setup(t)
  const baseline = timerCount()
  upstream.script = { tokens: ['I ', 'see'] }
  // Slower than each stop by far, faster than EXTRACTION_TIMEOUT_MS (5 s): the stream must not wait it out.
  upstream.jsonScript = { json: { facts: [] }, jsonDelayMs: 3000 }
  const extracting = async (message: string): Promise<StreamClient> => {
    const c = stream('org-a', agentId, { message })
    await c.until((x) => x.events.some((e) => e.json.chunk_type === 'memory_update' && e.json.content === 'extracting'))
    return c
  }
  const stored = async (c: StreamClient): Promise<unknown> => {
    const { body } = await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=${String(c.events[0]?.json.session_id)}`)
    return (body.data as Array<{ role: string, content: string, metadata: { outcome?: string } }>).map((m) => [m.role, m.content, m.metadata.outcome ?? null])
  }
  const endsDeferred = (c: StreamClient, how: string): void => {
    t.same(c.types().slice(-3), ['memory_update', 'memory_update', 'done'], `${how}: the stream ends with done`)
    t.match(c.events.at(-2)?.json, { content: 'extraction_deferred', memories_count: 0 }, `${how}: the wait for extraction was cut`)
  }

  const left = await extracting('my name is Ada')
  const id = String(left.events[0]?.json.stream_id)
  left.destroy()
  await until(() => app.streams().length === 0, 2000, 'released at once, while the extraction still runs')
  t.equal(upstream.jsonRequests.length, 1, 'the extraction was under way')
  t.same(ends.map((e) => e.outcome), ['done'], 'released once, as done')
  // The client that dropped resumes and learns its reply is kept, instead of a retryable client_gone.
  const resumed = new StreamClient(`${url}/api/v1/streams/${id}`, { method: 'GET', headers: { authorization: `Bearer ${token('org-a')}`, 'last-event-id': `${id}:0` } })
  await resumed.ended
  endsDeferred(resumed, 'disconnect, then resume')
  t.same(await stored(left), [['user', 'my name is Ada', null], ['assistant', 'I see', 'done']])

  const cancelled = await extracting('hello again')
  t.equal((await call('org-a', 'DELETE', `/api/v1/streams/${String(cancelled.events[0]?.json.stream_id)}`)).status, 204)
  await within(cancelled.ended, 2000, 'the cancelled stream to end')
  endsDeferred(cancelled, 'cancel')
  t.same(await stored(cancelled), [['user', 'hello again', null], ['assistant', 'I see', 'done']])

  const stopped = await extracting('bye')
  let closed = false
  const closing = app.close().then(() => { closed = true })
  await within(stopped.ended, 2000, 'the stream to end at shutdown')
  t.notOk(closed, 'before the shutdown, which waits for the extraction')
  endsDeferred(stopped, 'shutdown')
  await closing
  t.same(ends.map((e) => e.outcome), ['done', 'done', 'done'])
  await assertSettled(t, app, baseline)
})

/** The real SQLite store, its reply batches held at a gate (a slow disk) while the gate is closed. */
function gatedStore (): { store: SqliteStore, close: () => void, open: () => void } {
  const inner = new SqliteStore(':memory:')
  let gate: Promise<void> | null = null
  let open = (): void => {}
  const store = new Proxy(inner, {
    get (target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      // Called on the store itself, whose private fields a proxy does not have.
      if (prop !== 'appendMessages') return value.bind(target)
      return async (...args: unknown[]) => {
        if (gate !== null) await gate
        return await value.apply(target, args)
      }
    }
  })
  return {
    store,
    close: () => { gate = new Promise((resolve) => { open = resolve }) },
    open: () => { gate = null; open() }
  }
}

t.test('a turn stopped while its reply is being stored ends with done as soon as it is stored, without waiting for extraction', async (t) => {
  const disk = gatedStore()
  const { app, stream, upstream, agentId, ends, call } = await setup(t, {}, { store: disk.store })
  upstream.script = { tokens: ['I ', 'see'] }
  upstream.jsonScript = { json: { facts: [] }, jsonDelayMs: 3000 }
  disk.close()
  const c = stream('org-a', agentId, { message: 'hi' })
  try {
    await within(c.until((x) => x.text() === 'I see'), 1000, 'the reply')
    await sleep(50) // the reply reaches the store and waits there
    t.equal(c.types().includes('memory_update'), false, 'nothing after the reply while it is being stored')
    t.equal((await call('org-a', 'DELETE', `/api/v1/streams/${String(c.events[0]?.json.stream_id)}`)).status, 204)
  } finally {
    disk.open()
  }
  await within(c.ended, 2000, 'the stream to end once the reply is stored')
  t.same(c.types().slice(-3), ['memory_update', 'memory_update', 'done'])
  t.match(c.events.at(-2)?.json, { content: 'extraction_deferred' })
  t.same(ends.map((e) => e.outcome), ['done'])
  t.equal(app.streams().length, 0)
})

t.test('a reply\'s last words, held to leave with its ending, reach the reader while a slow store keeps the ending', async (t) => {
  const disk = gatedStore()
  // The built-in model at no delay: the last words and the end of the reply come in one tick.
  const { stream, createAgent } = await startApp(t, {}, { store: disk.store })
  const agentId = await createAgent('org-a')
  const quick = stream('org-a', agentId, { message: 'hi' })
  await quick.ended
  const reply = quick.text()
  t.ok(reply.length > 0)
  disk.close()
  const slow = stream('org-a', agentId, { message: 'hi' })
  try {
    await within(slow.until((x) => x.text() === reply), 1000, 'the whole reply while the store holds it')
    await sleep(50)
    t.notOk(slow.types().includes('done'), 'done waits for the store')
  } finally {
    disk.open()
  }
  await within(slow.ended, 1000, 'done once stored')
  t.equal(slow.last()?.chunk_type, 'done')
})

t.test('a half-open client (request sent, then its side closed) counts as gone: nothing held, nothing leaked', async (t) => {
  const { app, url, upstream, agentId, token, stream } = await setup(t, { streamMaxPerTenant: 1 })
  const baseline = timerCount()
  upstream.script = { tokens: ['one ', 'two ', 'three'], tokenDelayMs: 20 }
  const body = JSON.stringify({ message: 'hi' })
  const { socket } = new RawConnection(t, url, { allowHalfOpen: true })
  // The whole request, then FIN. Node's server (httpAllowHalfOpen off) takes that as the client leaving.
  socket.end(`POST /api/v1/agents/${agentId}/chat/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
    `Authorization: Bearer ${token('org-a')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  await once(socket, 'close')
  await assertSettled(t, app, baseline)
  const next = stream('org-a', agentId, { message: 'next' })
  await next.ended
  t.equal(next.last()?.chunk_type, 'done', 'the tenant\'s single slot is free')
})

t.test('a stream cut because its only reader stopped reading still ends its log with one terminal event', async (t) => {
  const { app, stream, upstream, agentId, ends, url, token } = await setup(t, { streamDrainTimeoutMs: 300 })
  upstream.script = { tokens: ['token '], forever: true }
  const client = stream('org-a', agentId, { message: 'hi' })
  await client.untilEvents(2)
  const id = String(client.events[0]?.json.stream_id)
  client.res?.pause()
  await until(() => app.streams().length === 0, 10_000, 'the stream to be cut')
  t.equal(ends.at(-1)?.outcome, 'slow_consumer')
  client.destroy()
  const resume = async (cursor: string): Promise<StreamClient> => {
    const c = new StreamClient(`${url}/api/v1/streams/${id}`, { method: 'GET', headers: { authorization: `Bearer ${token('org-a')}`, 'last-event-id': cursor } })
    await c.ended
    return c
  }
  // A cursor past the end says where the log ends.
  const ahead = await resume(`${id}:999999999`)
  t.equal(ahead.status, 400)
  const lastId = (JSON.parse(ahead.raw) as { details: { last_event_id: number } }).details.last_event_id
  const tail = await resume(`${id}:${lastId - 1}`)
  t.equal(tail.status, 200)
  t.same(tail.types(), ['error'], 'the last event of the log is the terminal one')
  t.match(tail.last(), { chunk_type: 'error', code: 'slow_consumer' })
  t.equal((await resume(`${id}:${lastId}`)).status, 204, 'and after it, nothing more')
})

t.test('a POST reader cut for being slow is counted and logged even when its stream goes on to done', async (t) => {
  const logs: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk, _enc, done) { for (const l of String(chunk).trim().split('\n')) logs.push(JSON.parse(l)); done() } })
  const { app, stream, upstream, agentId, ends, url } = await setup(t, { streamDrainTimeoutMs: 300, streamDetachGraceMs: 5000 }, { logger: pino({ level: 'info' }, sink) })
  upstream.script = { tokens: Array.from({ length: 40_000 }, () => 'x'.repeat(500) + ' ') } // 20 MB: more than the socket buffers hold
  const client = stream('org-a', agentId, { message: 'hi' })
  await client.untilEvents(2)
  client.res?.pause()
  await until(() => app.streams().length === 0, 10_000, 'the stream to finish without its reader')
  client.destroy()
  t.equal(ends.at(-1)?.outcome, 'done', 'generation finished within the grace period')
  t.match(logs.filter((l) => l.msg === 'slow reader cut'), [{ level: 40, stream_id: String(client.events[0]?.json.stream_id), drain_timeout_ms: 300 }])
  t.match(await scrape(url), /agentmem_slow_readers_cut_total 1\n/)
})

t.test('deleting the agent while its stream runs ends the stream with agent_deleted; internal errors are logged with their cause', async (t) => {
  const errors: unknown[] = []
  const { stream, upstream, agentId, ends, call } = await setup(t, {}, { onError: (err) => errors.push(err) })
  upstream.script = { tokens: ['a ', 'b '], hangAfterTokens: 1 }
  const client = stream('org-a', agentId, { message: 'hi' })
  await client.untilEvents(2)
  t.equal((await call('org-a', 'DELETE', `/api/v1/agents/${agentId}`)).status, 204)
  upstream.resume()
  await client.ended
  t.match(client.last(), { chunk_type: 'error', code: 'agent_deleted', content: /agent was deleted/ })
  t.equal(ends.at(-1)?.outcome, 'agent_deleted')
  t.same(errors, [], 'a named ending, not an unexpected error')
})

t.test('an onStreamEnd hook that throws is reported to onError; the stream has ended and close() does not wait for it', async (t) => {
  const errors: unknown[] = []
  const boom = new Error('hook failed')
  const { app, stream, agentId } = await startAppWithUpstream(t, {}, { onStreamEnd: () => { throw boom }, onError: (err) => errors.push(err) })
  const client = stream('org-a', agentId, { message: 'hi' })
  await client.ended
  t.equal(client.last()?.chunk_type, 'done', 'the reader got its whole stream')
  await until(() => errors.length === 1, 5000, 'the hook\'s error to reach onError')
  t.same(errors, [boom])
  t.equal(app.streams().length, 0, 'released')
  const next = stream('org-a', agentId, { message: 'again' })
  await next.ended
  t.equal(next.last()?.chunk_type, 'done', 'the server goes on')
  await within(app.close(), 5000, 'close()')
})
