import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo, Socket } from 'node:net'
import { SSE_SLICE_BYTES } from '../lib/llm/sliced-fetch.js'
import { upstreamFetch } from '../lib/llm/http-fetch.js'
import { until } from './helpers/settle.js'

/** 40 events of ~250 bytes, written in one piece: one large read for the client. */
const TAIL = 'data: end\n\n'
const EVENTS = Array.from({ length: 40 }, (_, i) => `data: {"n":${i},"pad":"${'x'.repeat(230)}"}\n\n`).join('')

interface Upstream { url: string, closed: () => boolean, sockets: Set<Socket>, seen: http.IncomingHttpHeaders[], bodies: string[] }

async function serve (t: Tap.Test): Promise<Upstream> {
  const up: Upstream = { url: '', closed: () => closed, sockets: new Set(), seen: [], bodies: [] }
  let closed = false
  const server = http.createServer(async (req, res) => {
    up.sockets.add(req.socket)
    up.seen.push(req.headers)
    let body = ''
    for await (const chunk of req) body += String(chunk)
    up.bodies.push(body)
    if (req.url === '/moved') {
      res.writeHead(308, { location: '/json' })
      return res.end()
    }
    if (req.url === '/json') {
      res.writeHead(201, 'Made', { 'content-type': 'application/json', 'x-request-id': 'req-9' })
      return res.end(JSON.stringify({ big: 'y'.repeat(10_000), echo: body }))
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(EVENTS)
    if (req.url === '/hold') res.on('close', () => { closed = true })
    else if (req.url === '/die') setTimeout(() => res.destroy(), 20)
    // A small read after the large one: it passes whole.
    else setTimeout(() => res.end(TAIL), 20)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return up
}

async function readAll (body: AsyncIterable<Uint8Array>): Promise<{ text: string, sizes: number[] }> {
  const sizes: number[] = []
  let text = ''
  const decoder = new TextDecoder()
  for await (const chunk of body) {
    sizes.push(chunk.length)
    text += decoder.decode(chunk, { stream: true })
  }
  return { text, sizes }
}

t.test('an event stream over node:http iterates in slices of at most SSE_SLICE_BYTES, the same bytes in order', async (t) => {
  const up = await serve(t)
  const res = await upstreamFetch(`${up.url}/events`, { method: 'POST', headers: { authorization: 'Bearer k' }, body: '{"stream":true}' })
  t.equal(res.status, 200)
  t.equal(res.ok, true)
  t.equal(res.headers.get('content-type'), 'text/event-stream')
  const { text, sizes } = await readAll(res.body as unknown as AsyncIterable<Uint8Array>)
  t.equal(text, EVENTS + TAIL)
  t.equal(sizes.at(-1), TAIL.length, 'the small read came whole')
  t.ok(sizes.every((n) => n <= SSE_SLICE_BYTES), `every slice at most ${SSE_SLICE_BYTES} bytes: ${sizes.join(',')}`)
  t.equal(up.bodies[0], '{"stream":true}', 'the body went up')
  t.equal(up.seen[0]?.authorization, 'Bearer k', 'the SDK\'s headers went up')
  t.equal(up.seen[0]?.['accept-encoding'], 'identity', 'nothing is to come compressed')
})

t.test('a JSON answer: status, reason, headers, url, json() and text(); connections are kept alive', async (t) => {
  const up = await serve(t)
  const first = await upstreamFetch(new URL(`${up.url}/json`), { method: 'POST', headers: new Headers({ 'content-type': 'application/json' }), body: new TextEncoder().encode('bytes') })
  t.same([first.status, first.statusText, first.ok, first.url], [201, 'Made', true, `${up.url}/json`])
  t.equal(first.headers.get('x-request-id'), 'req-9')
  t.equal(up.seen[0]?.['content-type'], 'application/json', 'headers given as a Headers went up')
  t.match(await first.json(), { big: String, echo: 'bytes' })
  const second = await upstreamFetch(`${up.url}/json`, { method: 'POST', body: 'text' })
  t.equal(JSON.parse(await second.text()).echo, 'text')
  t.equal(up.sockets.size, 1, 'the second request went over the first one\'s connection')
})

t.test('leaving the iteration early closes the upstream connection', async (t) => {
  const up = await serve(t)
  const res = await upstreamFetch(`${up.url}/hold`, { method: 'POST', body: '' })
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    t.ok(chunk.length <= SSE_SLICE_BYTES)
    break
  }
  await until(up.closed, 5000, 'the server to see the client go')
})

t.test('an abort while the body streams ends the iteration with the signal\'s AbortError and closes the connection', async (t) => {
  const up = await serve(t)
  const controller = new AbortController()
  const res = await upstreamFetch(`${up.url}/hold`, { method: 'POST', body: '', signal: controller.signal })
  const iterated = readAll(res.body as unknown as AsyncIterable<Uint8Array>)
  controller.abort()
  await t.rejects(iterated, { name: 'AbortError' })
  await until(up.closed, 5000, 'the server to see the client go')
})

t.test('an abort before the answer rejects the request with an AbortError', async (t) => {
  const up = await serve(t)
  await t.rejects(upstreamFetch(`${up.url}/json`, { method: 'POST', body: '', signal: AbortSignal.abort() }), { name: 'AbortError' })
})

t.test('an upstream that dies mid-body fails the iteration with its own error; one that is not there fails the request', async (t) => {
  const up = await serve(t)
  const res = await upstreamFetch(`${up.url}/die`, { method: 'POST', body: '' })
  await t.rejects(readAll(res.body as unknown as AsyncIterable<Uint8Array>), { code: 'ECONNRESET' })
  // A port just freed: nothing listens there.
  const free = http.createServer().listen(0, '127.0.0.1')
  await once(free, 'listening')
  const port = (free.address() as AddressInfo).port
  await new Promise((resolve) => free.close(resolve))
  await t.rejects(upstreamFetch(`http://127.0.0.1:${port}/`), { code: 'ECONNREFUSED' })
})

t.test('HTTPS upstreams, a Request and bodies that are not text or bytes go through fetch', async (t) => {
  const up = await serve(t)
  // fetch's own failure for a TLS handshake with a plain-HTTP server: proof it was fetch that asked.
  await t.rejects(upstreamFetch(`${up.url.replace('http:', 'https:')}/json`, { method: 'POST', body: '' }), { name: 'TypeError', message: 'fetch failed' })
  const viaRequest = await upstreamFetch(new Request(`${up.url}/json`, { method: 'POST', body: 'req' }))
  t.equal((await viaRequest.json() as { echo: string }).echo, 'req')
  const viaForm = await upstreamFetch(`${up.url}/json`, { method: 'POST', body: new URLSearchParams({ a: '1' }) })
  t.equal((await viaForm.json() as { echo: string }).echo, 'a=1')
  t.equal(up.seen.at(-1)?.['accept-encoding'], 'gzip, deflate', 'fetch\'s own headers: it was fetch that asked')
})

t.test('a redirect is followed by fetch, the method and body kept (308), as fetch alone would', async (t) => {
  const up = await serve(t)
  const res = await upstreamFetch(`${up.url}/moved`, { method: 'POST', body: 'again' })
  t.equal(res.status, 201)
  t.equal((await res.json() as { echo: string }).echo, 'again')
  t.same(up.bodies, ['again', 'again', 'again'], 'asked over node:http, then by fetch, which followed to /json')
})
