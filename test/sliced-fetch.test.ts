import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { SSE_SLICE_BYTES, slicedFetch } from '../lib/llm/sliced-fetch.js'
import { until } from './helpers/settle.js'

/** 40 events of ~250 bytes, written in one piece: one large read for the client. */
const TAIL = 'data: end\n\n'
const EVENTS = Array.from({ length: 40 }, (_, i) => `data: {"n":${i},"pad":"${'x'.repeat(230)}"}\n\n`).join('')

async function serve (t: Tap.Test): Promise<{ url: string, closed: () => boolean }> {
  let closed = false
  const server = http.createServer((req, res) => {
    if (req.url === '/json') return res.end(JSON.stringify({ big: 'y'.repeat(10_000) }))
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(EVENTS)
    // The hold stream stays open until the client goes.
    if (req.url === '/hold') res.on('close', () => { closed = true })
    // A small read after the large one: it passes whole.
    else setTimeout(() => res.end(TAIL), 20)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, closed: () => closed }
}

t.test('an event stream iterates in slices of at most SSE_SLICE_BYTES, the same bytes in order', async (t) => {
  const { url } = await serve(t)
  const res = await slicedFetch(`${url}/events`)
  const sizes: number[] = []
  let text = ''
  const decoder = new TextDecoder()
  for await (const chunk of res.body as ReadableStream<Uint8Array>) {
    sizes.push(chunk.length)
    text += decoder.decode(chunk, { stream: true })
  }
  t.equal(text, EVENTS + TAIL)
  t.equal(sizes.at(-1), TAIL.length, 'the small read came whole')
  t.ok(sizes.every((n) => n <= SSE_SLICE_BYTES), `every slice at most ${SSE_SLICE_BYTES} bytes: ${sizes.join(',')}`)
  t.ok(sizes.length >= Math.ceil(EVENTS.length / SSE_SLICE_BYTES), 'the 10 KB read was cut')
})

t.test('any other response is left as fetch made it', async (t) => {
  const { url } = await serve(t)
  const res = await slicedFetch(`${url}/json`)
  t.equal(Object.getOwnPropertySymbols(res.body as object).includes(Symbol.asyncIterator), false, 'its body iterates as ever')
  t.equal((await res.json() as { big: string }).big.length, 10_000)
})

t.test('leaving the iteration early cancels the body, so the upstream connection closes', async (t) => {
  const { url, closed } = await serve(t)
  const res = await slicedFetch(`${url}/hold`)
  for await (const chunk of res.body as ReadableStream<Uint8Array>) {
    t.ok(chunk.length <= SSE_SLICE_BYTES)
    break
  }
  await until(closed, 5000, 'the server to see the client go')
})
