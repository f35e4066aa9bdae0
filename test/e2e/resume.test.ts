import t, { type Test } from 'tap'
import { gunzipSync, createGunzip } from 'node:zlib'
import http from 'node:http'
import { randomBytes } from 'node:crypto'
import type { ServerOptionsInput } from '../../lib/config.js'
import { scrape, startAppWithUpstream, type AppWithUpstream } from '../helpers/server.js'
import { within, until } from '../helpers/settle.js'
import { StreamClient, seqOf, type RequestOptions } from '../helpers/sse-client.js'

const TOKENS = Array.from({ length: 12 }, (_, i) => `t${i} `)

async function setup (t: Test, options: ServerOptionsInput = {}): Promise<AppWithUpstream & { resume: (id: string, opts?: RequestOptions & { query?: string, org?: string, sub?: string }) => StreamClient }> {
  const app = await startAppWithUpstream(t, { streamDetachGraceMs: 2000, ...options })
  const resume = (id: string, opts: RequestOptions & { query?: string, org?: string, sub?: string } = {}): StreamClient =>
    new StreamClient(`${app.url}/api/v1/streams/${id}${opts.query ?? ''}`, {
      method: 'GET',
      rawBody: opts.rawBody,
      headers: { authorization: `Bearer ${app.token(opts.org ?? 'org-a', opts.sub)}`, ...opts.headers }
    })
  return { ...app, resume }
}

t.test('a dropped client resumes with Last-Event-ID: no gap, no duplicate, same ending', async (t) => {
  const { stream, upstream, agentId, resume, ends } = await setup(t)
  // The uninterrupted run, for comparison.
  upstream.script = { tokens: TOKENS }
  const whole = stream('org-a', agentId, { message: 'go' })
  await whole.ended

  upstream.script = { tokens: TOKENS, hangAfterTokens: 4 }
  const first = stream('org-a', agentId, { message: 'go' })
  await first.untilEvents(5)
  const start = first.events[0]?.json as { stream_id: string, resume_token: string }
  t.match(start, { stream_id: /^stream-/, resume_token: /^[\w-]{32}$/ })
  t.equal(first.retry, 1000, 'retry: sent once for EventSource')
  first.destroy()
  await first.ended
  const seen = first.events.at(-1)?.id as string
  upstream.resume()
  // Generation goes on detached; the reconnect picks up after the last event seen.
  const second = resume(start.stream_id, { headers: { 'last-event-id': seen } })
  await second.ended
  t.equal(second.status, 200)
  const ids = [...first.events, ...second.events].map((e) => seqOf(e.id))
  t.same(ids, ids.map((_, i) => i + 1), 'ids 1..n exactly once')
  t.equal(first.text() + second.text(), whole.text(), 'the concatenated reply equals the uninterrupted one')
  t.equal(second.last()?.chunk_type, 'done')
  t.equal(ends.at(-1)?.outcome, 'done', 'the drop did not end the generation')

  // After the end: a full replay from the start, and 204 once everything was seen.
  const replay = resume(start.stream_id)
  await replay.ended
  t.same(replay.events.map((e) => e.data), [...first.events, ...second.events].map((e) => e.data))
  const emptyCursor = resume(start.stream_id, { headers: { 'last-event-id': '' } })
  await emptyCursor.ended
  t.same(emptyCursor.events.map((e) => e.data), replay.events.map((e) => e.data), 'an empty Last-Event-ID means from the start, as a missing one does')
  const nothing = resume(start.stream_id, { query: `?last_event_id=${String(second.last() === undefined ? 0 : seqOf(second.events.at(-1)?.id))}` })
  await nothing.ended
  t.equal(nothing.status, 204)
})

t.test('nobody resumes within the grace period: the upstream is aborted and the slot released', async (t) => {
  const { stream, upstream, agentId, ends, app } = await setup(t, { streamDetachGraceMs: 100 })
  upstream.script = { tokens: TOKENS, hangAfterTokens: 2 }
  const client = stream('org-a', agentId, { message: 'go' })
  await client.untilEvents(3)
  const aborted = upstream.nextAbort()
  client.destroy()
  t.equal(app.streams().length, 1, 'still generating while detached')
  await within(aborted, 5000, 'the upstream to be aborted after the grace period')
  await until(() => app.streams().length === 0, 5000, 'every stream released')
  t.equal(ends.at(-1)?.outcome, 'client_gone')
})

t.test('resume auth, scope and errors', async (t) => {
  const { stream, upstream, agentId, resume, url, call } = await setup(t, { streamReplayMaxEvents: 3 })
  upstream.script = { tokens: TOKENS }
  const client = stream('org-a', agentId, { message: 'go' })
  await client.ended
  const { stream_id: id, resume_token: token } = client.events[0]?.json as { stream_id: string, resume_token: string }

  const byToken = new StreamClient(`${url}/api/v1/streams/${id}?resume_token=${token}&last_event_id=${client.events.length - 2}`, { method: 'GET' })
  await byToken.ended
  t.equal(byToken.status, 200, 'the resume token alone is enough')
  t.same(byToken.events.map((e) => e.json.chunk_type), ['memory_update', 'done'])

  const cases: Array<[string, StreamClient, number, string]> = [
    ['wrong token', new StreamClient(`${url}/api/v1/streams/${id}?resume_token=${token.slice(1)}x`, { method: 'GET' }), 404, 'NOT_FOUND'],
    ['token of the right length, wrong value', new StreamClient(`${url}/api/v1/streams/${id}?resume_token=${'A'.repeat(token.length)}`, { method: 'GET' }), 404, 'NOT_FOUND'],
    ['no credentials', new StreamClient(`${url}/api/v1/streams/${id}`, { method: 'GET' }), 401, 'UNAUTHORIZED'],
    ['another org', resume(id, { org: 'org-b' }), 404, 'NOT_FOUND'],
    ['another user of the org', resume(id, { sub: 'user-2' }), 404, 'NOT_FOUND'],
    ['unknown stream', resume('stream-nope'), 404, 'NOT_FOUND'],
    ['cursor too old for the buffer', resume(id, { headers: { 'last-event-id': '1' } }), 410, 'GONE'],
    ['cursor from the future', resume(id, { headers: { 'last-event-id': '999' } }), 400, 'BAD_REQUEST'],
    ['cursor not a number', resume(id, { headers: { 'last-event-id': 'abc' } }), 400, 'BAD_REQUEST'],
    ['cursor of another stream', resume(id, { headers: { 'last-event-id': 'stream-other:2' } }), 400, 'BAD_REQUEST'],
    ['cursor too old, in the full form', resume(id, { headers: { 'last-event-id': `${id}:1` } }), 410, 'GONE']
  ]
  for (const [name, c, status, code] of cases) {
    const body = await c.json()
    t.equal(c.status, status, name)
    t.equal(body.code, code, name)
  }
  // Like GET: an ended stream, another user's and an unknown one all answer the same 404.
  const cancelEnded = await call('org-a', 'DELETE', `/api/v1/streams/${id}`)
  t.equal(cancelEnded.status, 404, 'cancelling an ended stream')
  t.equal(cancelEnded.body.code, 'NOT_FOUND')
})

t.test('a resume token never opens another stream', async (t) => {
  const { stream, upstream, agentId, url } = await setup(t)
  upstream.script = { tokens: ['a'] }
  const one = stream('org-a', agentId, { message: 'one' })
  const two = stream('org-a', agentId, { message: 'two' })
  await Promise.all([one.ended, two.ended])
  const tokenOfOne = one.events[0]?.json.resume_token as string
  const idOfTwo = two.events[0]?.json.stream_id as string
  const c = new StreamClient(`${url}/api/v1/streams/${idOfTwo}?resume_token=${tokenOfOne}`, { method: 'GET' })
  t.equal((await c.json()).code, 'NOT_FOUND')
})

t.test('expired streams are gone after the TTL', async (t) => {
  const { stream, upstream, agentId, resume } = await setup(t, { streamResumeTtlMs: 50 })
  upstream.script = { tokens: ['a'] }
  const c = stream('org-a', agentId, { message: 'x' })
  await c.ended
  const id = c.events[0]?.json.stream_id as string
  await new Promise((resolve) => setTimeout(resolve, 80))
  t.equal((await resume(id).json()).code, 'NOT_FOUND')
})

t.test('ended streams share one byte budget: the oldest are forgotten first, before their TTL', async (t) => {
  const { stream, upstream, agentId, resume, app } = await setup(t, { streamResumeMaxBytes: 5 * 1024 })
  upstream.script = { tokens: ['x'.repeat(1000)] }
  const ids: string[] = []
  for (let i = 0; i < 6; i++) {
    const c = stream('org-a', agentId, { message: `turn ${i}` })
    await c.ended
    ids.push(c.events[0]?.json.stream_id as string)
  }
  const found = await Promise.all(ids.map(async (id) => { const r = resume(id); await r.ended; return r.status }))
  t.same(found, [404, 404, 404, 404, 200, 200], 'about 2 KB a stream (its events as UTF-8, its ids and names as UTF-16, a 52-byte header, 128 bytes in the index): the two newest fit in 5 KB')
  t.equal(app.streams().length, 0, 'none of them running')
})

t.test('a second live reader gets the same events (fan-out), and DELETE cancels for everyone', async (t) => {
  const { stream, upstream, agentId, resume, call, ends } = await setup(t)
  upstream.script = { tokens: TOKENS, hangAfterTokens: 3 }
  const first = stream('org-a', agentId, { message: 'go' })
  await first.untilEvents(4)
  const id = first.events[0]?.json.stream_id as string
  const second = resume(id)
  await second.untilEvents(4)
  t.same(second.events.map((e) => e.id), first.events.map((e) => e.id))
  t.equal((await call('org-b', 'DELETE', `/api/v1/streams/${id}`)).status, 404, 'another org cannot cancel')
  const cancelled = await call('org-a', 'DELETE', `/api/v1/streams/${id}`)
  t.equal(cancelled.status, 204)
  await Promise.all([first.ended, second.ended])
  for (const c of [first, second]) t.match(c.last(), { chunk_type: 'error', code: 'cancelled', content: 'Stream cancelled' })
  t.equal(ends.at(-1)?.outcome, 'cancelled')
  t.equal((await call('org-a', 'DELETE', `/api/v1/streams/stream-nope`)).status, 404)
})

t.test('gzip: asked for, each event and keep-alive decodable as soon as it is written', async (t) => {
  const { stream, upstream, agentId, resume } = await setup(t, { streamKeepaliveMs: 20 })
  upstream.script = { tokens: TOKENS, hangAfterTokens: 2 }
  const gz = stream('org-a', agentId, { message: 'go' }, { headers: { 'accept-encoding': 'gzip' }, rawBody: true })
  const res = (await gz.response()).res as http.IncomingMessage
  t.equal(res.headers['content-encoding'], 'gzip')
  t.equal(res.headers.vary, 'Accept-Encoding')
  const gunzip = createGunzip()
  let text = ''
  gunzip.on('data', (d: Buffer) => { text += d.toString() })
  res.pipe(gunzip)
  // The upstream holds token 3: everything before it must already decode.
  await until(() => (text.match(/^data: /gm) ?? []).length >= 3, 5000, 'start and two contents decoded mid-stream')
  t.match(text, /"content":"t1 "/)
  await until(() => text.includes('\n\n: keep-alive\n'), 5000, 'a keep-alive sent while the upstream is quiet decodes too')
  upstream.resume()
  await new Promise((resolve) => gunzip.on('end', resolve))
  t.match(text, /"chunk_type":"done"/)

  upstream.script = { tokens: TOKENS }
  const plain = stream('org-a', agentId, { message: 'go' }, { headers: { 'accept-encoding': 'br' } })
  await plain.ended
  t.equal(plain.headers['content-encoding'], undefined, 'never compressed unless asked')
  t.equal(plain.last()?.chunk_type, 'done')

  const id = plain.events[0]?.json.stream_id as string
  const replay = await resume(id, { headers: { 'accept-encoding': 'gzip' }, rawBody: true }).response()
  const parts: Buffer[] = []
  replay.res?.on('data', (d: Buffer) => parts.push(d))
  await replay.ended
  const raw = Buffer.concat(parts)
  t.match(gunzipSync(raw).toString(), /"chunk_type":"done"/, 'replays compress too')
})

t.test('the compression budget serves extra streams uncompressed', async (t) => {
  const { stream, upstream, agentId } = await setup(t, { streamMaxCompressed: 1 })
  upstream.script = { tokens: TOKENS, hangAfterTokens: 1 }
  const a = stream('org-a', agentId, { message: 'a' }, { headers: { 'accept-encoding': 'gzip' } })
  await a.response()
  const b = stream('org-a', agentId, { message: 'b' }, { headers: { 'accept-encoding': 'gzip' } })
  await b.untilEvents(1)
  t.equal(a.headers['content-encoding'], 'gzip')
  t.equal(b.headers['content-encoding'], undefined)
  a.destroy()
  b.destroy()
  upstream.script = { tokens: ['x'] }
  const c = stream('org-a', agentId, { message: 'c' }, { headers: { 'accept-encoding': 'gzip' } })
  await c.response()
  await until(() => c.headers['content-encoding'] === 'gzip', 5000, 'the budget came back when the first closed')
  c.destroy()
})

t.test('gzip keeps backpressure: a stuck compressed reader is cut after the drain bound', async (t) => {
  const { stream, upstream, agentId, app, ends } = await setup(t, { streamDetachGraceMs: 0, streamDrainTimeoutMs: 300 })
  // Random tokens: repetitive ones would compress to nothing and never fill a socket.
  // Large ones fill the socket and kernel buffers in a second instead of most of a minute.
  upstream.script = { tokens: Array.from({ length: 1000 }, () => randomBytes(3000).toString('base64')), forever: true }
  const client = stream('org-a', agentId, { message: 'go' }, { headers: { 'accept-encoding': 'gzip' }, rawBody: true })
  await client.response()
  t.equal(client.headers['content-encoding'], 'gzip')
  // Nobody reads the body: the compressed bytes back up into the server's buffers.
  await until(() => app.streams().length === 0, 15000, 'the stuck compressed reader is cut')
  t.equal(ends.at(-1)?.outcome, 'slow_consumer')
  client.destroy()
})

t.test('live streams share STREAM_LIVE_REPLAY_MAX_BYTES; /metrics reports what live and ended logs hold', async (t) => {
  const { stream, upstream, agentId, url, token } = await setup(t, { streamLiveReplayMaxBytes: 64 * 1024, streamDetachGraceMs: 10_000 })
  upstream.script = { tokens: Array.from({ length: 401 }, (_, i) => `token-${i} `.padEnd(200, '.')), hangAfterTokens: 400 }
  const clients = [0, 1, 2].map(() => stream('org-a', agentId, { message: 'go' }))
  await Promise.all(clients.map(async (c) => await c.untilEvents(401)))
  const live = Number(/agentmem_replay_bytes\{state="live"\} (\d+)/.exec(await scrape(url))?.[1])
  t.ok(live > 0 && live <= 64 * 1024, `three long live streams hold ${live} bytes together, within the 64 KiB budget`)
  const id = String(clients[0]?.events[0]?.json.stream_id)
  const fromStart = new StreamClient(`${url}/api/v1/streams/${id}`, { method: 'GET', headers: { authorization: `Bearer ${token('org-a')}`, 'last-event-id': `${id}:1` } })
  t.equal((await fromStart.json()).code, 'GONE', 'a cursor that fell out of the budget gets 410')
  const recent = new StreamClient(`${url}/api/v1/streams/${id}`, { method: 'GET', headers: { authorization: `Bearer ${token('org-a')}`, 'last-event-id': `${id}:400` } })
  await recent.response()
  t.equal(recent.status, 200, 'a recent one still resumes')
  recent.destroy()
  upstream.resume()
  await Promise.all(clients.map(async (c) => await c.ended))
  const after = await scrape(url)
  t.match(after, /agentmem_replay_bytes\{state="live"\} 0\n/, 'ended streams leave the live budget')
  t.ok(Number(/agentmem_replay_bytes\{state="ended"\} (\d+)/.exec(after)?.[1]) > 0, 'for the ended one')
})
