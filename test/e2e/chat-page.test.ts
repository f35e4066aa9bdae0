import t from 'tap'
import { mkdirSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { launchChromium } from '../helpers/browser.js'
import { createServer } from '../../lib/server.js'
import { startApp } from '../helpers/server.js'
import { request } from '../helpers/sse-client.js'

const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname

t.test('the chat page in a real browser: streamed reply, a tool call, a memory update, the memory list', async (t) => {
  const app = await createServer({ port: 0, databaseUrl: 'sqlite::memory:', builtinTokenDelayMs: 15, logLevel: 'silent' })
  const url = await app.listen()
  t.teardown(() => app.close())
  const page = await (await launchChromium(t)).newPage({ viewport: { width: 1100, height: 640 } })
  await page.goto(`${url}/`)
  await page.waitForSelector('#agent option', { state: 'attached' })
  t.equal(await page.inputValue('#agent'), app.dev?.agent.id, 'the demo agent is picked, with the dev token')

  await page.fill('#message', 'Hi, my name is Ada and I love green tea')
  await page.press('#message', 'Enter')
  await page.waitForSelector('.memory_update')
  t.match(await page.textContent('.assistant'), /You said: Hi, my name is Ada/)

  await page.fill('#message', 'remember that my cat is called Tom')
  await page.click('form button')
  const tool = await page.waitForSelector('.assistant >> nth=1 >> .tool_call:has-text("completed")')
  t.match(await tool.textContent(), /tool save_memory\(\{"content":"my cat is called Tom"\}\): completed/)
  await page.waitForSelector('#memories li:has-text("my cat is called Tom")')
  const memories = await page.$$eval('#memories li', (items) => items.map((li) => li.textContent))
  t.ok(memories.some((m) => m?.startsWith("User's name is Ada")), 'extracted memories listed too')
  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: `${ARTIFACTS}chat-page.png` })
})

t.test('the page is served in dev mode or with UI=on, never with UI=off', async (t) => {
  const on = await startApp(t, { ui: 'on' })
  const page = await request(`${on.url}/`, { method: 'GET' })
  t.equal(page.status, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.headers['content-security-policy'], /default-src 'self'/)
  t.notMatch(page.raw, /<meta name="dev-token"/, 'no token baked in outside dev mode')
  const off = await startApp(t)
  t.equal((await request(`${off.url}/`, { method: 'GET' })).status, 404, 'not without dev mode or UI=on')
  const devOff = await createServer({ port: 0, databaseUrl: 'sqlite::memory:', ui: 'off', logLevel: 'silent' })
  const devUrl = await devOff.listen()
  t.teardown(() => devOff.close())
  t.equal((await request(`${devUrl}/`, { method: 'GET' })).status, 404, 'UI=off wins over dev mode')
})

t.test('the chat page resumes with Last-Event-ID when its stream is cut', async (t) => {
  const app = await createServer({ port: 0, databaseUrl: 'sqlite::memory:', builtinTokenDelayMs: 40, logLevel: 'silent' })
  const url = await app.listen()
  t.teardown(() => app.close())
  const seen: Array<{ method: string, path: string, lastEventId: string | undefined, res: ServerResponse }> = []
  app.http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    seen.push({ method: req.method as string, path: (req.url as string).split('?')[0] as string, lastEventId: req.headers['last-event-id'] as string | undefined, res })
  })
  const page = await (await launchChromium(t)).newPage()
  await page.goto(`${url}/`)
  await page.waitForSelector('#agent option', { state: 'attached' })
  const message = 'one two three four five six seven eight nine ten'
  await page.fill('#message', message)
  await page.press('#message', 'Enter')
  await page.waitForFunction(() => (document.querySelector('.assistant span')?.textContent ?? '').split(' ').length >= 4)
  // Cut the POST stream's connection from the server side, mid-reply.
  seen.find((r) => r.method === 'POST' && r.path.endsWith('/chat/stream'))?.res.socket?.destroy()
  await page.waitForSelector('.memory_update')
  t.equal(await page.textContent('.assistant span'), `You said: ${message}`, 'the whole reply, once')
  const resume = seen.find((r) => r.path.startsWith('/api/v1/streams/'))
  t.ok(resume, 'the page reconnected to the resume endpoint')
  t.match(resume?.lastEventId, /^stream-[\w-]+:\d+$/, 'with Last-Event-ID')
})
