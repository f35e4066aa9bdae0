// Reasoning models: thinking keeps a stream alive, can be watched with include_reasoning, is
// never the reply; memory extraction degrades from json_schema to json_object to an instruction.
import t, { type Test } from 'tap'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { scrape, startApp, type TestApp } from '../helpers/server.js'
import { seqOf, StreamClient } from '../helpers/sse-client.js'
import { FakeOpenAI, startUpstream } from '../helpers/upstream.js'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ServerOptionsInput } from '../../lib/config.js'
import { until } from '../helpers/settle.js'

const THOUGHTS = Array.from({ length: 8 }, (_, i) => `thought ${i}. `)
const TOKENS = ['The ', 'answer ', 'is ', '42.']

interface Setup extends TestApp { upstream: FakeOpenAI, agentId: string, logs: () => Array<Record<string, unknown>> }

async function setup (t: Test, options: ServerOptionsInput = {}): Promise<Setup> {
  const upstream = await startUpstream(t)
  let raw = ''
  const sink = new Writable({ write (chunk, _enc, done) { raw += String(chunk); done() } })
  const app = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'k', openaiBaseUrl: upstream.url, ...options }, { logger: pino({ level: 'info' }, sink) })
  const logs = (): Array<Record<string, unknown>> => raw.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
  return { ...app, upstream, agentId: await app.createAgent('org-a'), logs }
}

for (const field of ['reasoning_content', 'reasoning'] as const) {
  t.test(`${field}: thinking longer than the first-token and idle bounds ends in done`, async (t) => {
    // 8 thoughts 100 ms apart: 700 ms of thinking against bounds of 300 ms.
    const { stream, upstream, agentId, call } = await setup(t, { streamFirstTokenTimeoutMs: 300, streamIdleTimeoutMs: 300 })
    upstream.script = { reasoning: THOUGHTS, reasoningField: field, reasoningDelayMs: 100, tokens: TOKENS }
    const plain = stream('org-a', agentId, { message: 'think' })
    await plain.ended
    t.equal(plain.last()?.chunk_type, 'done', 'not cut off while thinking')
    t.notOk(plain.types().includes('reasoning'), 'no reasoning chunk unless asked: AgentMem clients never see a type they do not know')
    t.equal(plain.text(), TOKENS.join(''))

    const watched = stream('org-a', agentId, { message: 'think', include_reasoning: true, session_id: 's1' })
    await watched.ended
    const types = watched.types()
    t.same(types.slice(0, 1 + THOUGHTS.length), ['start', ...THOUGHTS.map(() => 'reasoning')], 'the thinking first, as it arrived')
    t.same(watched.events.filter((e) => e.json.chunk_type === 'reasoning').map((e) => e.json.content), THOUGHTS, 'text exact, one chunk per delta')
    for (const e of watched.events) t.same(Object.keys(e.json).slice(0, 4), ['chunk_type', 'content', 'tool_call', 'memories_count'])
    t.equal(watched.text(), TOKENS.join(''))
    t.equal(watched.last()?.chunk_type, 'done')

    const history = (await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=s1`)).body.data as Array<{ role: string, content: string, metadata: Record<string, unknown> }>
    t.equal(history[1]?.content, TOKENS.join(''), 'the stored reply holds no reasoning')
    t.equal(history[1]?.metadata.reasoning, THOUGHTS.join(''), 'the reasoning is kept in its metadata')
    const extraction = upstream.jsonRequests.at(-1)?.body.messages[1]?.content as string
    t.equal(JSON.parse(extraction).assistant, TOKENS.join(''), 'extraction sees the reply, not the thinking')
    t.notMatch(extraction, /thought/)
  })
}

t.test('done.usage carries reasoning_tokens; metrics tell first reasoning from first content', async (t) => {
  const { stream, upstream, agentId, url } = await setup(t)
  upstream.script = { reasoning: THOUGHTS.slice(0, 2), reasoningDelayMs: 50, tokens: TOKENS, reasoningTokens: 12 }
  const client = stream('org-a', agentId, { message: 'think' })
  await client.ended
  t.match(client.last(), { chunk_type: 'done', usage: { completion_tokens: TOKENS.length, reasoning_tokens: 12 } })
  upstream.script = { tokens: TOKENS }
  const plain = stream('org-a', agentId, { message: 'no thinking' })
  await plain.ended
  t.equal((plain.last()?.usage as Record<string, unknown>).reasoning_tokens, undefined, 'absent when the upstream reports none')
  const metrics = await scrape(url)
  t.match(metrics, /agentmem_time_to_first_reasoning_seconds_count 1\n/)
  t.match(metrics, /agentmem_time_to_first_token_seconds_count 2\n/)
})

t.test('a stream cut mid-reasoning resumes: the rest of the thinking, then the reply', async (t) => {
  const { stream, upstream, agentId, url, token } = await setup(t, { streamDetachGraceMs: 5000 })
  upstream.script = { reasoning: THOUGHTS, hangAfterReasoning: 3, tokens: TOKENS }
  const first = stream('org-a', agentId, { message: 'think', include_reasoning: true })
  await first.untilEvents(4)
  first.destroy()
  const again = new StreamClient(`${url}/api/v1/streams/${String(first.events[0]?.json.stream_id)}`, {
    method: 'GET', headers: { authorization: `Bearer ${token('org-a')}`, 'last-event-id': first.events.at(-1)?.id as string }
  })
  await again.response()
  upstream.resume()
  await again.ended
  const all = [...first.events, ...again.events]
  t.same(all.map((e) => seqOf(e.id)), all.map((_, i) => i + 1), 'no gap, no duplicate')
  t.same(all.filter((e) => e.json.chunk_type === 'reasoning').map((e) => e.json.content), THOUGHTS)
  t.equal(again.text(), TOKENS.join(''))
  t.equal(again.last()?.chunk_type, 'done')
})

const FACT = { facts: [{ action: 'ADD', content: 'User likes tea', memory_type: 'Semantic', importance: 0.6, target_id: null }] }

t.test('extraction falls back json_schema → json_object → instruction, and remembers what worked', async (t) => {
  const cases: Array<[string, Record<string, string[]>, string[]]> = [
    ['json_schema refused', { refuseModes: ['json_schema'] }, ['json_schema', 'json_object']],
    ['json_schema and json_object refused', { refuseModes: ['json_schema', 'json_object'] }, ['json_schema', 'json_object', 'instruction']],
    ['both ignored: prose', { proseModes: ['json_schema', 'json_object'] }, ['json_schema', 'json_object', 'instruction']]
  ]
  for (const [name, script, tried] of cases) {
    const { stream, upstream, agentId, call } = await setup(t)
    upstream.jsonScript = { json: FACT, ...script }
    const client = stream('org-a', agentId, { message: 'I like tea' })
    await client.ended
    t.match(client.events.at(-2)?.json, { chunk_type: 'memory_update', content: null, memories_count: 1 }, `${name}: extracted`)
    const modes = upstream.jsonRequests.map((r) => (r.body.response_format as { type?: string } | undefined)?.type ?? 'instruction')
    t.same(modes, tried, `${name}: tried in order`)
    const memories = (await call('org-a', 'GET', `/api/v1/agents/${agentId}/memories`)).body.data as Array<{ content: string }>
    t.same(memories.map((m) => m.content), ['User likes tea'])
    const next = stream('org-a', agentId, { message: 'I like tea a lot' })
    await next.ended
    t.equal(upstream.jsonRequests.length, tried.length + 1, `${name}: the next turn asks in the mode that worked, once`)
    t.equal((upstream.jsonRequests.at(-1)?.body.response_format as { type?: string } | undefined)?.type ?? 'instruction', tried.at(-1))
  }
})

t.test('a failed extraction is logged at warn with the upstream status, and counted', async (t) => {
  const { stream, upstream, agentId, url, logs } = await setup(t)
  upstream.jsonScript = { json: FACT, refuseModes: ['json_schema', 'json_object', 'instruction'] }
  const client = stream('org-a', agentId, { message: 'I like tea' })
  await client.ended
  t.match(client.events.at(-2)?.json, { content: 'extraction_failed' })
  const warned = logs().filter((l) => l.msg === 'memory extraction failed')
  t.equal(warned.length, 1)
  t.match(warned[0], { level: 40, upstream_status: 400, error: /answered 400: .*instruction is not supported/ })
  // Prose in every mode (no JSON in the plain answer either) fails the same way.
  upstream.jsonScript = { json: FACT, proseModes: ['json_schema', 'json_object', 'instruction'] }
  const prose = stream('org-a', agentId, { message: 'I like tea' })
  await prose.ended
  t.match(prose.events.at(-2)?.json, { content: 'extraction_failed' })
  t.match(logs().filter((l) => l.msg === 'memory extraction failed')[1], { level: 40, upstream_status: null, error: /The instruction answer is not JSON/ })
  upstream.jsonScript = { json: FACT }
  await stream('org-a', agentId, { message: 'I like tea' }).ended
  const metrics = await scrape(url)
  t.match(metrics, /agentmem_memory_extractions_total\{outcome="failed"\} 2\n/)
  t.match(metrics, /agentmem_memory_extractions_total\{outcome="ok"\} 1\n/)
})

t.test('a slow reader of a long thinking phase slows the upstream; only the first 32,768 characters are kept', async (t) => {
  const { stream, upstream, agentId, call, app } = await setup(t)
  // 3,000 thoughts of 2,000 characters: 6 MB, more than the socket buffers hold.
  const thought = 'x'.repeat(1999) + ' '
  upstream.script = { reasoning: Array.from({ length: 3000 }, () => thought), tokens: TOKENS }
  const client = stream('org-a', agentId, { message: 'think hard', include_reasoning: true, session_id: 'slow' })
  await client.untilEvents(2)
  client.res?.pause()
  await until(() => app.streams()[0]?.bufferedBytes !== undefined && (app.streams()[0]?.bufferedBytes ?? 0) > 0, 5000, 'the socket buffer to fill')
  await sleep(300)
  client.res?.resume()
  await client.ended
  t.equal(client.events.filter((e) => e.json.chunk_type === 'reasoning').length, 3000, 'every thought arrived')
  t.equal(client.last()?.chunk_type, 'done')
  const history = (await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=slow`)).body.data as Array<{ metadata: { reasoning: string } }>
  t.equal(history[1]?.metadata.reasoning.length, 32_768, 'the reasoning kept is bounded')
})

t.test('reasoning tokens are summed over tool rounds', async (t) => {
  const { stream, upstream, agentId } = await setup(t)
  upstream.queue.push(
    { reasoning: ['which tool?'], tokens: [], toolCalls: [{ name: 'current_time', fragments: ['{}'] }], reasoningTokens: 5 },
    { tokens: TOKENS }
  )
  const client = stream('org-a', agentId, { message: 'time?' })
  await client.ended
  t.match(client.last(), { chunk_type: 'done', usage: { reasoning_tokens: 5 } }, 'one round reported 5, the other none')
  upstream.queue.push(
    { tokens: [], toolCalls: [{ name: 'current_time', fragments: ['{}'] }], reasoningTokens: 5 },
    { tokens: TOKENS, reasoningTokens: 7 }
  )
  const both = stream('org-a', agentId, { message: 'time?' })
  await both.ended
  t.match(both.last(), { chunk_type: 'done', usage: { reasoning_tokens: 12 } })
})
