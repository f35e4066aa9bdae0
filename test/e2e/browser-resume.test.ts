import t from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { launchChromium, readWithEventSource, type PageState } from '../helpers/browser.js'
import { startApp } from '../helpers/server.js'
import { until } from '../helpers/settle.js'
import { startUpstream } from '../helpers/upstream.js'
import { seqOf } from '../helpers/sse-client.js'

const TOKENS = Array.from({ length: 8 }, (_, i) => `w${i} `)


t.test('a browser EventSource resumes a cut stream by itself with Last-Event-ID', async (t) => {
  const upstream = await startUpstream(t)
  const { url, stream, createAgent, app } = await startApp(t, {
    llmProvider: 'openai', openaiApiKey: 'k', openaiBaseUrl: upstream.url, streamDetachGraceMs: 10_000
  })
  const resumes: Array<{ req: IncomingMessage, res: ServerResponse }> = []
  app.http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if ((req.url as string).startsWith('/api/v1/streams/')) resumes.push({ req, res })
  })
  upstream.script = { tokens: TOKENS, hangAfterTokens: 3 }
  const post = stream('org-a', await createAgent('org-a'), { message: 'go' })
  await post.untilEvents(4)
  const { stream_id: id, resume_token: token } = post.events[0]?.json as { stream_id: string, resume_token: string }
  post.destroy()

  const page = await (await launchChromium(t)).newPage()
  // Any page of the same origin will do: EventSource then needs no CORS.
  await page.goto(`${url}/`)
  await page.evaluate(readWithEventSource, `/api/v1/streams/${id}?resume_token=${token}`)
  const state = async (): Promise<PageState> => await page.evaluate(() => (window as unknown as { state: PageState }).state)

  await until(() => resumes.length === 1, 5000, 'the browser connected')
  await until(async () => (await state()).events.length >= 4, 5000, 'the replay arrived')
  // Cut the browser's connection from the server side, mid-stream.
  const before = await state()
  resumes[0]?.res.socket?.destroy()
  await until(() => resumes.length === 2, 15000, 'EventSource reconnected on its own')
  t.equal(resumes[1]?.req.headers['last-event-id'], before.events.at(-1)?.id, 'with the id of the last event it got')
  t.equal(before.events.at(-1)?.id, `${id}:4`, 'which was the last one sent before the upstream paused')
  upstream.resume()
  await until(async () => (await state()).done, 5000, '(await state()).done')
  const final = await state()
  const ids = final.events.map((e) => seqOf(e.id))
  t.same(ids, ids.map((_, i) => i + 1), 'every event once, in order')
  t.equal(final.events.filter((e) => e.type === 'content').map((e) => e.content).join(''), TOKENS.join(''), 'the whole reply')
  t.equal(final.events.at(-1)?.type, 'done')
})
