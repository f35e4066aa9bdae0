import t from 'tap'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { METRICS_TOKEN, scrape, startApp } from '../helpers/server.js'
import { startUpstream } from '../helpers/upstream.js'
import { request } from '../helpers/sse-client.js'
import { until } from '../helpers/settle.js'
import { RawConnection } from '../helpers/raw.js'
import { metricsAccess } from '../../lib/routes/metrics.js'
import { requestIdFrom } from '../../lib/observability/logger.js'

function captureLogs (): { logger: pino.Logger, lines: () => Array<Record<string, unknown>>, raw: () => string } {
  let raw = ''
  const sink = new Writable({ write (chunk, _enc, done) { raw += String(chunk); done() } })
  return { logger: pino({ level: 'info' }, sink), raw: () => raw, lines: () => raw.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) }
}

t.test('metrics count what happened, in Prometheus text', async (t) => {
  const { url, stream, createAgent, call } = await startApp(t, { streamMaxPerTenant: 1, streamKeepaliveMs: 20, builtinTokenDelayMs: 30 })
  const agentId = await createAgent('org-a')
  const first = stream('org-a', agentId, { message: 'remember that I like tea and more words here' })
  await first.untilEvents(3)
  const refused = stream('org-a', agentId, { message: 'second' })
  t.equal((await refused.response()).status, 429)
  await first.ended
  await call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'hi, my name is Ada' })
  const res = await request(`${url}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
  t.equal(res.status, 200)
  t.match(res.headers['content-type'], /^text\/plain/)
  const text = res.raw
  const value = (pattern: string): number => Number(new RegExp(`^${pattern} (\\S+)$`, 'm').exec(text)?.[1])
  t.equal(value('agentmem_streams_started_total'), 2)
  t.equal(value('agentmem_streams_ended_total\\{outcome="done"\\}'), 2)
  t.equal(value('agentmem_limit_rejections_total\\{scope="tenant"\\}'), 1)
  t.equal(value('agentmem_active_streams\\{tenant="org-a"\\}'), 0)
  t.equal(value('agentmem_tool_calls_total\\{outcome="completed"\\}'), 1)
  t.equal(value('agentmem_memories_written_total\\{op="ADD"\\}'), 2, 'one by the tool, one by extraction')
  t.equal(value('agentmem_time_to_first_token_seconds_count'), 2)
  t.equal(value('agentmem_stream_duration_seconds_count'), 2)
  t.equal(value('agentmem_events_sent_total'), first.events.length, 'events of the SSE stream (the one-shot chat sends none)')
  t.ok(value('agentmem_event_bytes_total') > 0)
  t.ok(value('agentmem_keepalives_total') >= 1, 'keep-alives while the slow builtin model answered')
})

t.test('with METRICS_TOKEN, scrapers must present it', async (t) => {
  const { url } = await startApp(t, { metricsToken: 'scrape-token-1234567890' })
  t.equal((await request(`${url}/metrics`, { method: 'GET' })).status, 401)
  t.equal((await request(`${url}/metrics`, { method: 'GET', headers: { authorization: 'Bearer wrong' } })).status, 401)
  t.equal((await request(`${url}/metrics`, { method: 'GET', headers: { authorization: 'Bearer scrape-token-1234567890' } })).status, 200)
})

t.test('metrics access rule', async (t) => {
  t.equal(metricsAccess('127.0.0.1', undefined, undefined, true), null, 'dev mode: loopback may scrape without a token')
  t.equal(metricsAccess('::ffff:127.0.0.1', undefined, undefined, true), null)
  t.equal(metricsAccess('::1', undefined, undefined, true), null)
  t.match(metricsAccess('10.1.2.3', undefined, undefined, true), { status: 403, code: 'FORBIDDEN' })
  t.match(metricsAccess('127.0.0.1', undefined, undefined, false), { status: 403, code: 'FORBIDDEN', message: /METRICS_TOKEN/ },
    'outside dev mode loopback is no credential: a reverse proxy on the host looks like loopback')
  t.match(metricsAccess('127.0.0.1', undefined, 'tok', true), { status: 401 }, 'a token, once set, is required from loopback too')
  t.equal(metricsAccess('10.1.2.3', 'Bearer tok', 'tok', false), null)
})

t.test('outside dev mode without METRICS_TOKEN /metrics is refused, even from loopback', async (t) => {
  const { url } = await startApp(t, { metricsToken: undefined })
  const res = await request(`${url}/metrics`, { method: 'GET' })
  t.equal(res.status, 403)
  t.equal(JSON.parse(res.raw).code, 'FORBIDDEN')
})

t.test('logs: one line per request and per stream end, with the request id, never secrets or message text', async (t) => {
  const logs = captureLogs()
  const { url, stream, createAgent, token } = await startApp(t, {}, { logger: logs.logger })
  const agentId = await createAgent('org-a')
  const secretMessage = 'my bank password is hunter2'
  const client = stream('org-a', agentId, { message: secretMessage }, { headers: { 'x-request-id': 'req-abc.123' } })
  await client.ended
  t.equal(client.headers['x-request-id'], 'req-abc.123', 'echoed')
  const resumeToken = client.events[0]?.json.resume_token as string
  const streamId = client.events[0]?.json.stream_id as string
  await request(`${url}/api/v1/streams/${streamId}?resume_token=${resumeToken}`, { method: 'GET' })
  const generated = await request(`${url}/healthz`, { method: 'GET', headers: { 'x-request-id': 'bad id with spaces' } })
  t.match(generated.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'an unusable id is replaced')
  await new Promise((resolve) => setTimeout(resolve, 20))
  const lines = logs.lines()
  t.match(lines.find((l) => l.msg === 'stream end'), { req_id: 'req-abc.123', org: 'org-a', agent: agentId, stream_id: streamId, outcome: 'done', ms: Number, events: client.events.length, tokens: 7 })
  t.match(lines.find((l) => l.msg === 'request' && l.req_id === 'req-abc.123'), { method: 'POST', path: `/api/v1/agents/${agentId}/chat/stream`, status: 200 })
  t.ok(lines.some((l) => l.msg === 'request' && l.path === `/api/v1/streams/${streamId}`), 'resume logged by path')
  const raw = logs.raw()
  for (const secret of [secretMessage, 'hunter2', resumeToken, token('org-a')]) t.notOk(raw.includes(secret), 'no secret or message text in logs')
  t.equal(requestIdFrom(['a', 'b'], () => 'made'), 'made')
})

t.test('a client that leaves in the middle of its request body is logged without a status, not reported as our error', async (t) => {
  const logs = captureLogs()
  const errors: unknown[] = []
  const { app, url, createAgent, token, stream } = await startApp(t, {}, { logger: logs.logger, onError: (err) => errors.push(err) })
  const agentId = await createAgent('org-a')
  const path = `/api/v1/agents/${agentId}/chat/stream`
  const { socket } = new RawConnection(t, url)
  socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ${token('org-a')}\r\n` +
    'Content-Length: 500\r\n\r\n{"message": "only the start')
  // The server is reading the body once the handler runs; then the client goes.
  await new Promise((resolve) => setTimeout(resolve, 50))
  socket.destroy()
  await until(() => logs.lines().some((l) => l.msg === 'request' && l.path === path), 5000, 'the request is logged')
  t.equal(logs.lines().find((l) => l.msg === 'request' && l.path === path)?.status, null, 'no status: nothing was answered')
  t.same(errors, [], 'not reported as an unexpected error')
  t.equal(app.streams().length, 0)
  const next = stream('org-a', agentId, { message: 'still here' })
  await next.ended
  t.equal(next.last()?.chunk_type, 'done', 'the server goes on')
})

t.test('agentmem_streams_started_total counts streams that sent their 200, not slots taken for a turn refused before it', async (t) => {
  const upstream = await startUpstream(t)
  const { url, stream, createAgent } = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'k', openaiBaseUrl: upstream.url })
  const agentId = await createAgent('org-a')
  upstream.queue.push({ status: 500 })
  const refused = stream('org-a', agentId, { message: 'hi' })
  await refused.ended
  t.equal(refused.status, 502)
  const served = stream('org-a', agentId, { message: 'hi' })
  await served.ended
  t.equal(served.status, 200)
  t.match(await scrape(url), /\nagentmem_streams_started_total 1\n/)
})
