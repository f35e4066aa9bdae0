// In headless Chromium, from a page on another origin: sse.js POSTs the turn and its
// autoReconnect finishes the reply after a cut; the native EventSource reads a stream with its
// resume token and reconnects by itself; without CORS_ORIGINS the browser refuses both.
import t, { type Test } from 'tap'
import http from 'node:http'
import { readFileSync } from 'node:fs'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { Page } from 'playwright-core'
import { launchChromium, readWithEventSource, type PageState } from '../helpers/browser.js'
import { startApp, type TestApp } from '../helpers/server.js'
import { TcpProxy } from '../helpers/proxy.js'
import { seqOf } from '../helpers/sse-client.js'
import { until } from '../helpers/settle.js'

const SSE_JS = readFileSync(new URL('../../node_modules/sse.js/lib/sse.js', import.meta.url), 'utf8')
const MESSAGE = 'remember that my favourite colour is teal and that I live in a small town by the sea'


/** The app's origin: a server of its own that serves a blank page and sse.js. */
async function appOrigin (t: Test): Promise<string> {
  const server = http.createServer((req, res) => {
    if (req.url === '/sse.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' })
      res.end(SSE_JS)
      return
    }
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end('<!doctype html><title>app</title>')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return `http://localhost:${(server.address() as AddressInfo).port}`
}

async function openPage (t: Test): Promise<Page> {
  const page = await (await launchChromium(t)).newPage()
  await page.goto(`${await appOrigin(t)}/`)
  await page.evaluate(() => { Object.assign(window, { state: { events: [], errors: [], done: false } }) })
  return page
}

const stateOf = async (page: Page): Promise<PageState> => await page.evaluate(() => (window as unknown as { state: PageState }).state)

/** Cuts the connection once two words of the reply are in, then waits for the reply to end. */
async function cutAndFinish (page: Page, proxy: TcpProxy): Promise<PageState> {
  await until(async () => (await stateOf(page)).events.filter((e) => e.type === 'content').length >= 2, 10_000, 'two words in the page')
  proxy.cut()
  await until(async () => (await stateOf(page)).done, 15_000, 'the reply to end in the page')
  return await stateOf(page)
}

async function assertOneWholeTurn (t: Test, app: TestApp, agentId: string, state: PageState, proxy: TcpProxy): Promise<void> {
  t.same(state.errors, [], 'the naive handler never threw')
  t.same(state.events.map((e) => seqOf(e.id)), state.events.map((_, i) => i + 1), 'every event once, in order')
  for (const type of ['start', 'tool_call', 'content', 'memory_update']) t.ok(state.events.some((e) => e.type === type), `got ${type}`)
  t.equal(state.events.at(-1)?.type, 'done')
  t.equal(proxy.connections, 2, 'one reconnect')
  const history = (await app.call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history`)).body.data as Array<{ role: string, content: string }>
  t.same(history.map((m) => m.role), ['user', 'assistant'], 'one turn stored')
  t.equal(history[1]?.content, state.events.filter((e) => e.type === 'content').map((e) => e.content).join(''), 'the page shows the stored reply')
}

async function corsApp (t: Test, corsOrigins?: string, builtinTokenDelayMs = 40): Promise<{ app: TestApp, proxy: TcpProxy, agentId: string }> {
  const app = await startApp(t, { builtinTokenDelayMs, streamDetachGraceMs: 10_000, ...(corsOrigins === undefined ? {} : { corsOrigins }) })
  const proxy = await TcpProxy.start(app.url)
  t.teardown(() => proxy.close())
  return { app, proxy, agentId: await app.createAgent('org-a') }
}

t.test('sse.js from another origin: POST, cut, autoReconnect with Last-Event-ID, one turn', async (t) => {
  const page = await openPage(t)
  const origin = new URL(page.url()).origin
  // Slow enough that the reply is still coming when the page has two words and the test cuts:
  // at 40 ms a token a loaded machine's polling of the page once saw the whole reply first.
  const { app, proxy, agentId } = await corsApp(t, origin, 250)
  await page.evaluate(async ({ url, token, message }) => {
    const { SSE } = await import('/sse.js') as { SSE: new (url: string, opts: Record<string, unknown>) => EventTarget & { close: () => void } }
    const state = (window as unknown as { state: PageState }).state
    const source = new SSE(url, {
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      payload: JSON.stringify({ message }),
      method: 'POST',
      autoReconnect: true,
      useLastEventId: true
    })
    source.addEventListener('message', (e) => {
      const ev = e as MessageEvent & { id: string }
      try {
        const chunk = JSON.parse(ev.data) as { chunk_type: string, content: string | null }
        state.events.push({ id: ev.lastEventId ?? ev.id, type: chunk.chunk_type, content: chunk.content })
        if (chunk.chunk_type === 'done' || chunk.chunk_type === 'error') {
          source.close()
          state.done = true
        }
      } catch (err) {
        state.errors.push(String(err))
      }
    })
  }, { url: `${proxy.url}/api/v1/agents/${agentId}/chat/stream`, token: app.token('org-a'), message: MESSAGE })
  await assertOneWholeTurn(t, app, agentId, await cutAndFinish(page, proxy), proxy)
})

t.test('the native EventSource from another origin reads with ?resume_token= and reconnects by itself', async (t) => {
  const page = await openPage(t)
  // Slow enough that the reply is still coming when the EventSource attaches, however late, so the cut lands mid-reply.
  const { app, proxy, agentId } = await corsApp(t, new URL(page.url()).origin, 250)
  // The turn is started with a POST (here by the test); EventSource, which can only GET, reads it.
  const post = app.stream('org-a', agentId, { message: MESSAGE })
  await post.untilEvents(1)
  const { stream_id: id, resume_token: token } = post.events[0]?.json as { stream_id: string, resume_token: string }
  post.destroy()
  await page.evaluate(readWithEventSource, `${proxy.url}/api/v1/streams/${id}?resume_token=${token}`)
  await assertOneWholeTurn(t, app, agentId, await cutAndFinish(page, proxy), proxy)
})

t.test('without CORS_ORIGINS the browser refuses both the POST and the EventSource', async (t) => {
  const page = await openPage(t)
  const { app, proxy, agentId } = await corsApp(t)
  const post = app.stream('org-a', agentId, { message: MESSAGE })
  await post.untilEvents(1)
  const { stream_id: id, resume_token: resumeToken } = post.events[0]?.json as { stream_id: string, resume_token: string }
  const answered: number[] = []
  app.app.http.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => { res.once('close', () => answered.push(res.statusCode)) })
  const outcome = await page.evaluate(async ({ url, token, streamUrl }) => {
    const post = await fetch(url, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: '{"message":"hi"}' })
      .then((r) => `status ${r.status}`, (err: Error) => err.name)
    const es = await new Promise<number>((resolve) => {
      const source = new EventSource(streamUrl)
      source.onerror = () => { resolve(source.readyState); source.close() }
    })
    return { post, esState: es }
  }, { url: `${proxy.url}/api/v1/agents/${agentId}/chat/stream`, token: app.token('org-a'), streamUrl: `${proxy.url}/api/v1/streams/${id}?resume_token=${resumeToken}` })
  t.equal(outcome.post, 'TypeError', 'fetch fails: the preflight carries no Access-Control-Allow-Origin')
  t.equal(outcome.esState, 2, 'EventSource fails for good (CLOSED)')
  await until(() => answered.includes(200), 5000, 'the server to have answered the stream with 200: the browser refused it')
  t.pass('the server answered 200; the refusal was the browser\'s')
})
