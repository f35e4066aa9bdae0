// The SSE client libraries people use, each as its README shows, with a naive handler
// (JSON.parse(e.data), no guard): every chunk type arrives, and when a proxy cuts the
// connection mid-stream the library's own reconnect finishes the reply without a second turn.
import t, { type Test } from 'tap'
import type { IncomingMessage } from 'node:http'
import { fetchEventSource } from '@microsoft/fetch-event-source'
import { EventSource as ExtendedEventSource } from 'extended-eventsource'
import { EventSource as EventSource4 } from 'eventsource'
import { EventSource as EventSource3 } from 'eventsource-v3'
import { EventSource as EventSource5 } from 'eventsource-v5'
import { startApp } from '../helpers/server.js'
import { TcpProxy } from '../helpers/proxy.js'
import { seqOf } from '../helpers/sse-client.js'
import { until } from '../helpers/settle.js'

/** What a library handed to the handler: the event's id and its parsed data. */
interface Received { id: string, chunk: { chunk_type: string, content: string | null, tool_call: unknown } }

/** Opens the library on `url` with a POST of `body`; calls `onEvent` per message; returns its close. */
type Connect = (url: string, headers: Record<string, string>, body: string, onEvent: (e: Received) => void) => () => void

// The built-in model calls save_memory for "remember …", then answers in words: every chunk type.
const MESSAGE = 'remember that my favourite colour is teal and that I live in a small town by the sea'

async function cutMidStreamAndResume (t: Test, connect: Connect): Promise<void> {
  const app = await startApp(t, { builtinTokenDelayMs: 40, streamDetachGraceMs: 10_000 })
  const agentId = await app.createAgent('org-a')
  const proxy = await TcpProxy.start(app.url)
  t.teardown(() => proxy.close())
  const posts: Array<{ lastEventId: string | undefined }> = []
  app.app.http.on('request', (req: IncomingMessage) => {
    if (req.method === 'POST') posts.push({ lastEventId: req.headers['last-event-id'] as string | undefined })
  })

  const received: Received[] = []
  let cut = false
  const close = connect(`${proxy.url}/api/v1/agents/${agentId}/chat/stream`,
    { Authorization: `Bearer ${app.token('org-a')}`, 'Content-Type': 'application/json' },
    JSON.stringify({ message: MESSAGE }),
    (e) => {
      received.push(e)
      // Cut the network under the library once a few words of the reply have arrived.
      if (!cut && received.filter((r) => r.chunk.chunk_type === 'content').length === 2) {
        cut = true
        proxy.cut()
      }
    })
  t.teardown(close)
  await until(() => received.some((r) => r.chunk.chunk_type === 'done' || r.chunk.chunk_type === 'error'), 15_000, 'the reply to end')
  close()

  const types = received.map((r) => r.chunk.chunk_type)
  t.equal(types[0], 'start')
  t.equal(types.at(-1), 'done', 'ends with done')
  for (const type of ['tool_call', 'content', 'memory_update']) t.ok(types.includes(type), `got ${type} chunks`)
  const streamId = (received[0]?.chunk as unknown as { stream_id: string }).stream_id
  t.same(received.map((r) => r.id), received.map((_, i) => `${streamId}:${i + 1}`), 'every event once, in order: no gap, no duplicate')
  t.equal(proxy.connections, 2, 'the library reconnected once')
  t.equal(posts.length, 2, 'two POSTs in all')
  t.equal(posts[0]?.lastEventId, undefined, 'the first without Last-Event-ID')
  t.ok(seqOf(posts[1]?.lastEventId) >= 2, `the second with the id of an event it had (${String(posts[1]?.lastEventId)})`)

  const history = await app.call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history`)
  const messages = history.body.data as Array<{ role: string, content: string }>
  t.same(messages.map((m) => m.role), ['user', 'assistant'], 'one turn stored, not two')
  t.equal(messages[1]?.content, received.filter((r) => r.chunk.chunk_type === 'content').map((r) => r.chunk.content).join(''),
    'the client shows exactly the stored reply')
}

/** The `eventsource` package (v3, v4 and v5; v5 asks for Node 22 but runs on 20), POSTing through its `fetch` option as its README shows. */
function eventsourcePackage (EventSource: typeof EventSource4): Connect {
  return (url, headers, body, onEvent) => {
    const es = new EventSource(url, {
      fetch: async (input, init) => await fetch(input, { ...init, method: 'POST', body, headers: { ...init.headers, ...headers } })
    })
    es.onmessage = (e) => { onEvent({ id: e.lastEventId, chunk: JSON.parse(e.data) }) }
    return () => { es.close() }
  }
}

t.test('@microsoft/fetch-event-source', async (t) => {
  // It reads window.fetch, window.setTimeout and document's visibility: the stand-ins Node needs.
  const g = globalThis as Record<string, unknown>
  g.window ??= globalThis
  g.document ??= { hidden: false, addEventListener: () => {}, removeEventListener: () => {} }
  await cutMidStreamAndResume(t, (url, headers, body, onEvent) => {
    const ctrl = new AbortController()
    void fetchEventSource(url, {
      method: 'POST',
      headers,
      body,
      signal: ctrl.signal,
      onmessage: (ev) => { onEvent({ id: ev.id, chunk: JSON.parse(ev.data) }) }
    })
    return () => { ctrl.abort() }
  })
})

t.test('extended-eventsource', async (t) => {
  await cutMidStreamAndResume(t, (url, headers, body, onEvent) => {
    const es = new ExtendedEventSource(url, { method: 'POST', headers, body, disableLogger: true })
    es.onmessage = (e) => { onEvent({ id: e.lastEventId, chunk: JSON.parse(e.data) }) }
    return () => { es.close() }
  })
})

t.test('eventsource 4', async (t) => { await cutMidStreamAndResume(t, eventsourcePackage(EventSource4)) })
t.test('eventsource 5', async (t) => { await cutMidStreamAndResume(t, eventsourcePackage(EventSource5 as typeof EventSource4)) })
t.test('eventsource 3', async (t) => { await cutMidStreamAndResume(t, eventsourcePackage(EventSource3 as typeof EventSource4)) })
