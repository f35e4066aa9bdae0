import t from 'tap'
import { FakeOpenAI, startUpstream } from '../helpers/upstream.js'
import { startApp } from '../helpers/server.js'
import { seqOf } from '../helpers/sse-client.js'

const FOUR_KEYS = ['chunk_type', 'content', 'tool_call', 'memories_count']
/** Every completed turn ends with extraction progress, its result, then done. */
const TAIL = ['memory_update', 'memory_update', 'done']

t.test('builtin provider: start, content per token, done, with ids and the four keys', async (t) => {
  const { stream, createAgent, call } = await startApp(t)
  const agentId = await createAgent('org-a')
  const client = stream('org-a', agentId, { message: 'Tell me a story about AI', stream: true, extra_field: 'ignored' })
  await client.response()
  t.equal(client.status, 200)
  t.equal(client.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.equal(client.headers['cache-control'], 'no-cache, no-transform')
  t.equal(client.headers['x-accel-buffering'], 'no')
  await client.ended
  const types = client.types()
  t.equal(types[0], 'start')
  t.equal(types.at(-1), 'done')
  t.ok(types.slice(1, -3).every((x) => x === 'content'))
  t.same(types.slice(-3), TAIL)
  t.equal(client.text(), 'You said: Tell me a story about AI')
  t.same(client.events.map((e) => e.id), client.events.map((_, i) => `${String(client.events[0]?.json.stream_id)}:${i + 1}`), 'ids name the stream and count up from 1')
  for (const e of client.events) t.same(Object.keys(e.json).slice(0, 4), FOUR_KEYS, 'four keys first, always present')
  const start = client.events[0]?.json as Record<string, unknown>
  t.match(start, { content: null, tool_call: null, memories_count: null, stream_id: /^stream-/, session_id: String })
  t.equal(client.headers.vary, 'Accept-Encoding', 'compressed or not depends on Accept-Encoding, so caches must key on it')
  const done = client.last() as Record<string, unknown>
  t.match(done, { content: null, usage: { completion_tokens: types.length - 4 } })

  const history = await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=${String(start.session_id)}`)
  t.equal(history.status, 200)
  t.same((history.body.data as Array<{ role: string, content: string }>).map((m) => [m.role, m.content]), [
    ['user', 'Tell me a story about AI'],
    ['assistant', 'You said: Tell me a story about AI']
  ])
  t.equal((history.body.data as Array<{ id: string }>)[1]?.id, done.message_id, 'done names the stored reply')
})

t.test('each token reaches the client while the upstream is still generating', async (t) => {
  const upstream = await startUpstream(t)
  upstream.script = { tokens: ['first', ' second'], hangAfterTokens: 1 }
  const { stream, createAgent } = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'sk-test', openaiBaseUrl: upstream.url })
  const client = stream('org-a', await createAgent('org-a'), { message: 'hi' })
  // The upstream holds its second token until the client has seen the first one.
  await client.untilEvents(2)
  t.same(client.types(), ['start', 'content'])
  t.equal(client.text(), 'first')
  upstream.resume()
  await client.ended
  t.same(client.types(), ['start', 'content', 'content', ...TAIL])
})

t.test('openai provider: real SDK against an OpenAI-compatible server, token by token', async (t) => {
  const upstream = await startUpstream(t)
  upstream.script = { tokens: ['Once', ' upon', ' a', ' time'], tokenDelayMs: 5 }
  const { stream, createAgent, call } = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'sk-test', openaiBaseUrl: upstream.url, llmModel: 'm-default' })
  const agentId = await createAgent('org-a', { system: 'You are terse.', llm_config: { model: 'm-agent', temperature: 0.3 } })

  const first = stream('org-a', agentId, { message: 'Tell me a story', session_id: 's1' })
  await first.ended
  t.same(first.types(), ['start', 'content', 'content', 'content', 'content', ...TAIL])
  t.equal(first.text(), 'Once upon a time')
  t.same(first.last()?.usage, { prompt_tokens: 7, completion_tokens: 4, total_tokens: 11 })
  const sent = upstream.requests[0]?.body
  t.equal(sent?.model, 'm-agent', 'agent model wins over the default')
  t.equal(sent?.temperature, 0.3)
  t.equal(sent?.stream, true)
  t.same(sent?.stream_options, { include_usage: true })
  t.same(sent?.messages, [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Tell me a story' }])
  t.equal(upstream.requests[0]?.headers.authorization, 'Bearer sk-test')

  // The same session carries its history into the next prompt.
  const second = stream('org-a', agentId, { message: 'And then?', session_id: 's1' })
  await second.ended
  t.same(upstream.requests[1]?.body.messages, [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Tell me a story' },
    { role: 'assistant', content: 'Once upon a time' },
    { role: 'user', content: 'And then?' }
  ])

  const plain = await call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'hi' })
  t.equal(plain.status, 200)
  t.match(plain.body, { success: true, data: { content: 'Once upon a time', memories_updated: false, memories_count: 0, tool_calls: [], message_id: /^msg-/, processing_time_ms: Number } })
})

t.test('a long reply (over a thousand tokens) is stored and answered exactly as it was streamed', async (t) => {
  const upstream = await startUpstream(t)
  const tokens = Array.from({ length: 1100 }, (_, i) => (i % 9 === 0 ? ` é${i}` : ` w${i}`))
  upstream.script = { tokens }
  const { stream, createAgent, call } = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'k', openaiBaseUrl: upstream.url })
  const agentId = await createAgent('org-a')
  const client = stream('org-a', agentId, { message: 'go on', session_id: 'long' })
  await client.ended
  t.equal(client.text(), tokens.join(''))
  const history = await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=long`)
  t.equal((history.body.data as Array<{ content: string }>).at(-1)?.content, tokens.join(''), 'history has what the client saw')
  const plain = await call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'again' })
  t.equal((plain.body.data as { content: string }).content, tokens.join(''), 'the one-shot reply too')
})

t.test('upstream refusing before streaming is an HTTP 502, and nothing is stored', async (t) => {
  const upstream = await startUpstream(t)
  const { stream, createAgent, call } = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'sk-test', openaiBaseUrl: upstream.url })
  const agentId = await createAgent('org-a')
  for (const status of [429, 500, 401]) {
    upstream.script = { status }
    const client = stream('org-a', agentId, { message: 'hi', session_id: 'refused' })
    const body = await client.json()
    t.equal(client.status, 502, `upstream ${status}`)
    t.match(body, { code: 'UPSTREAM_ERROR', details: { upstream_status: status, code: 'upstream_error', retryable: true }, timestamp: String })
  }
  const plain = await call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'hi', session_id: 'refused' })
  t.equal(plain.status, 502)
  const history = await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=refused`)
  t.same(history.body.data, [])
})

t.test('upstream unreachable is a 502 naming the failure', async (t) => {
  const upstream = await new FakeOpenAI().start()
  const deadUrl = upstream.url
  await upstream.close()
  const { stream, createAgent } = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'sk-test', openaiBaseUrl: deadUrl })
  const client = stream('org-a', await createAgent('org-a'), { message: 'hi' })
  t.equal(client.status === 0 ? (await client.response()).status : client.status, 502)
  t.match(await client.json(), { code: 'UPSTREAM_ERROR', message: /LLM upstream failed/ })
})

t.test('upstream dying mid-stream ends the stream with an error chunk, partial reply kept', async (t) => {
  const upstream = await startUpstream(t)
  upstream.script = { tokens: ['a', 'b', 'c', 'd'], dieAfterTokens: 2, tokenDelayMs: 20 }
  const { stream, createAgent, call } = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'sk-test', openaiBaseUrl: upstream.url })
  const agentId = await createAgent('org-a')
  const client = stream('org-a', agentId, { message: 'hi', session_id: 'mid' })
  await client.ended
  t.same(client.types(), ['start', 'content', 'content', 'error'])
  t.match(client.last(), { chunk_type: 'error', code: 'upstream_error', content: String, tool_call: null, memories_count: null })
  const history = await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=mid`)
  t.match(history.body.data, [{ role: 'user' }, { role: 'assistant', content: 'ab', metadata: { outcome: 'incomplete' } }])

  upstream.script = { tokens: ['a', 'b'], dieAfterTokens: 1, tokenDelayMs: 20 }
  const plain = await call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'hi' })
  t.equal(plain.status, 502)
  t.match(plain.body, { code: 'UPSTREAM_ERROR' })
})

t.test('CR, LF, NUL, U+2028 and lone surrogates in a message never break framing over the wire', async (t) => {
  // NUL and lone surrogates become U+FFFD at the edge (no UTF-8 store keeps the one, PostgreSQL refuses the other).
  const { stream, createAgent, call } = await startApp(t)
  const agentId = await createAgent('org-a')
  const message = 'a\rb\nc\r\nd\0e\u2028f\u2029g\ud800h\udfffi data: x\n\nid: 99\n: comment'
  const client = stream('org-a', agentId, { message, session_id: 'odd' })
  await client.ended
  const clean = message.toWellFormed().replaceAll('\0', '\uFFFD')
  t.not(clean, message, 'the lone surrogates and the NUL were made U+FFFD at the edge')
  t.equal(client.text(), `You said: ${clean}`, 'the reply, byte for byte, through an independent parser')
  t.same(client.events.map((e) => seqOf(e.id)), client.events.map((_, i) => i + 1), 'no event split or injected')
  const history = await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=odd`)
  t.equal((history.body.data as Array<{ content: string }>)[0]?.content, clean, 'stored exactly as streamed')
})
