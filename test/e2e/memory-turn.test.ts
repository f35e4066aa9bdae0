import t, { type Test } from 'tap'
import { memoryBlock } from '../../lib/chat/prompt.js'
import type { ServerOptionsInput } from '../../lib/config.js'
import type { ServerDeps } from '../../lib/server.js'
import { startApp, startAppWithUpstream, type AppWithUpstream } from '../helpers/server.js'
import { until } from '../helpers/settle.js'
import type { UpstreamScript } from '../helpers/upstream.js'
import { SqliteStore } from '../../lib/store/sqlite.js'

type Mem = { id: string, content: string }

async function setup (t: Test, options: ServerOptionsInput = {}, deps: ServerDeps = {}): Promise<AppWithUpstream & { addMemory: (content: string, user?: string) => Promise<Mem> }> {
  const app = await startAppWithUpstream(t, options, deps, { system: 'You are helpful.' })
  // Memories of any user of the org, as an admin of it writes them (a plain user writes only its own).
  const addMemory = async (content: string, user = 'user-1'): Promise<Mem> => {
    const res = await app.callAs({ org: 'org-a', sub: 'backend', roles: ['admin'] }, 'POST', `/api/v1/agents/${app.agentId}/memories`, { content, user_id: user })
    if (res.status !== 201) throw new Error(`memory not created: ${res.status}`)
    return res.body.data as Mem
  }
  return { ...app, addMemory }
}

t.test('the most relevant memories of this user go into the prompt as a context block', async (t) => {
  const { stream, upstream, agentId, addMemory } = await setup(t)
  await addMemory('User likes green tea')
  await addMemory('User lives in Paris')
  await addMemory('User likes black coffee', 'user-2')
  const client = stream('org-a', agentId, { message: 'Which tea do I like?' })
  await client.ended
  t.equal(client.events[0]?.json.memories_retrieved, 1)
  const messages = upstream.requests[0]?.body.messages
  t.same(messages?.slice(0, 2), [
    { role: 'system', content: 'You are helpful.' },
    { role: 'system', content: memoryBlock(['User likes green tea']) }
  ])
  t.same(messages?.at(-1), { role: 'user', content: 'Which tea do I like?' })
  t.notMatch(JSON.stringify(messages), /coffee|Paris/, 'another user\'s memory and unrelated ones stay out')
  t.same((upstream.requests[0]?.body.tools as Array<{ function: { name: string } }>).map((x) => x.function.name), ['search_memory', 'save_memory', 'current_time'])

  await stream('org-a', agentId, { message: 'Which tea do I like?', max_memories: 0 }).ended
  t.notMatch(JSON.stringify(upstream.requests[1]?.body.messages), /<memories>/, 'max_memories 0 retrieves nothing')
})

t.test('tool calls stream live: running, then completed, results fed back to the model', async (t) => {
  const { stream, upstream, agentId, call } = await setup(t)
  upstream.queue.push(
    { tokens: [], toolCalls: [{ id: 'call_1', name: 'save_memory', fragments: ['{"content":', '"User has a cat named Tom"}'] }] },
    { tokens: ['Saved', ' it.'] }
  )
  const client = stream('org-a', agentId, { message: 'I have a cat named Tom, remember it' })
  await client.ended
  t.same(client.types(), ['start', 'tool_call', 'tool_call', 'content', 'content', 'memory_update', 'memory_update', 'done'])
  const [running, completed] = client.events.filter((e) => e.json.chunk_type === 'tool_call').map((e) => e.json.tool_call as Record<string, unknown>)
  t.same(running, { id: 'call_1', tool_name: 'save_memory', arguments: { content: 'User has a cat named Tom' }, status: 'running' })
  t.match(completed, { id: 'call_1', tool_name: 'save_memory', status: 'completed', result: /"saved":true/ })
  const saved = JSON.parse(completed?.result as string) as { id: string }
  const update = client.events.at(-2)?.json
  t.match(update, { chunk_type: 'memory_update', memories_count: 1, memories: [{ op: 'ADD', id: saved.id, content: 'User has a cat named Tom' }] })
  t.equal(client.text(), 'Saved it.')
  const followUp = upstream.requests[1]?.body.messages
  t.same(followUp?.slice(-2), [
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'save_memory', arguments: '{"content":"User has a cat named Tom"}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: completed?.result }
  ])
  const stored = await call('org-a', 'GET', `/api/v1/memories/${saved.id}`)
  t.match(stored.body.data, { content: 'User has a cat named Tom', metadata: { source: 'save_memory' } })

  // Providers that resend the whole argument string each time are understood too.
  upstream.queue.push({ tokens: [], toolCalls: [{ name: 'search_memory', fragments: ['', '{"query":"ca', '{"query":"cat"}'] }] }, { tokens: ['ok'] })
  const search = stream('org-a', agentId, { message: 'what about my cat' })
  await search.ended
  const done = search.events.filter((e) => e.json.chunk_type === 'tool_call').map((e) => e.json.tool_call as Record<string, unknown>)
  t.same(done[0]?.arguments, { query: 'cat' })
  t.match(done[0]?.id, /^call-0-0$/, 'an id is made up when the provider sends none')
  t.match(done[1], { status: 'completed', result: /User has a cat named Tom/ })
})

t.test('failed tools produce failed chunks, the model is told, the stream goes on', async (t) => {
  const alive: string[] = []
  const { stream, upstream, agentId } = await setup(t, { toolTimeoutMs: 50 }, {
    tools: [
      { name: 'explode', description: 'throws', parameters: { type: 'object' }, handler: async () => { throw new Error('kaboom') } },
      { name: 'slow', description: 'never ends', parameters: { type: 'object' }, handler: async (_args, ctx) => await new Promise((resolve) => { ctx.signal.addEventListener('abort', () => { alive.push('aborted'); resolve(null) }) }) }
    ]
  })
  upstream.queue.push({
    tokens: [],
    toolCalls: [
      { name: 'no_such_tool', fragments: ['{}'] },
      { name: 'save_memory', fragments: ['{"content":'] },
      { name: 'save_memory', fragments: ['{"content":42}'] },
      { name: 'explode', fragments: ['{}'] },
      { name: 'slow', fragments: ['{}'] }
    ]
  }, { tokens: ['Sorry.'] })
  const client = stream('org-a', agentId, { message: 'do things' })
  await client.ended
  const failed = client.events.filter((e) => (e.json.tool_call as { status?: string } | null)?.status === 'failed').map((e) => (e.json.tool_call as { error: string }).error)
  t.same(failed, ['Unknown tool: no_such_tool', 'Arguments are not valid JSON', 'Invalid arguments: data/content must be string', 'kaboom', 'Tool timed out after 50 ms'])
  t.same(alive, ['aborted'], 'the slow tool saw its signal fire at the timeout')
  t.equal(client.last()?.chunk_type, 'done')
  t.equal(client.text(), 'Sorry.')
  const toolMessages = upstream.requests[1]?.body.messages.filter((m) => m.role === 'tool').map((m) => m.content)
  t.same(toolMessages, failed.map((e) => `Error: ${e}`))
})

t.test('tool rounds stop at MAX_TOOL_ROUNDS; the last round offers no tools', async (t) => {
  const { stream, upstream, agentId, call } = await setup(t, { maxToolRounds: 2 })
  for (let i = 0; i < 3; i++) upstream.queue.push({ tokens: [`r${i} `], toolCalls: [{ name: 'current_time', fragments: ['{}'] }] })
  const client = stream('org-a', agentId, { message: 'loop' })
  await client.ended
  t.equal(upstream.requests.length, 3)
  t.ok(upstream.requests[1]?.body.tools, 'round 2 still offers tools')
  t.equal(upstream.requests[2]?.body.tools, undefined, 'round 3 must answer in words')
  t.equal(client.events.filter((e) => e.json.chunk_type === 'tool_call').length, 4, 'two rounds of one call, running and completed each')
  t.equal(client.text(), 'r0 r1 r2 ')
  t.match(client.last(), { chunk_type: 'done', usage: { completion_tokens: 3, prompt_tokens: 21 } }, 'usage summed over rounds')

  upstream.queue.push({ tokens: [], toolCalls: [{ name: 'current_time', fragments: ['{}'] }] }, { tokens: ['It is late.'] })
  const plain = await call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'time?' })
  t.match(plain.body.data, { content: 'It is late.', tool_calls: [{ tool_name: 'current_time', status: 'completed', result: /"now":"\d{4}-/ }] })
})

t.test('extraction: ADD, UPDATE and NOOP decided by the model, stored before memory_update, before done', async (t) => {
  const { stream, upstream, agentId, addMemory, call } = await setup(t)
  const paris = await addMemory('User lives in Paris')
  upstream.jsonScript = {
    json: {
      facts: [
        { action: 'ADD', content: 'User likes tea', memory_type: 'Semantic', importance: 0.6, target_id: null },
        { action: 'UPDATE', content: 'User lives in Berlin', memory_type: 'Semantic', importance: 0.8, target_id: paris.id },
        { action: 'NOOP', content: 'User lives in Berlin', memory_type: 'Semantic', importance: 0.8, target_id: paris.id },
        { action: 'UPDATE', content: 'User is 30', memory_type: 'Semantic', importance: 0.5, target_id: 'mem-made-up' }
      ]
    }
  }
  const client = stream('org-a', agentId, { message: 'I moved from Paris to Berlin and I like tea', session_id: 's9' })
  await client.ended
  const updates = client.events.filter((e) => e.json.chunk_type === 'memory_update').map((e) => e.json)
  t.match(updates[0], { content: 'extracting', memories_count: null })
  t.match(updates[1], {
    content: null,
    memories_count: 3,
    memories: [
      { op: 'ADD', content: 'User likes tea' },
      { op: 'UPDATE', id: paris.id, content: 'User lives in Berlin', previous: 'User lives in Paris' },
      { op: 'ADD', content: 'User is 30' }
    ]
  })
  t.equal(client.last()?.chunk_type, 'done')
  const sent = upstream.jsonRequests[0]?.body
  t.match(sent?.response_format, { type: 'json_schema', json_schema: { name: 'memory_extraction', strict: true } })
  const payload = JSON.parse(sent?.messages[1]?.content as string)
  t.same(payload.existing_memories, [{ id: paris.id, content: 'User lives in Paris' }])
  t.equal(payload.user, 'I moved from Paris to Berlin and I like tea')
  t.equal(payload.assistant, 'Hello from upstream')
  const stored = (await call('org-a', 'GET', `/api/v1/agents/${agentId}/memories`)).body.data as Array<Mem & { session_id: string }>
  t.same(stored.map((m) => m.content).sort(), ['User is 30', 'User likes tea', 'User lives in Berlin'])
  t.ok(stored.filter((m) => m.content !== 'User lives in Berlin').every((m) => m.session_id === 's9'))

  upstream.jsonScript = { json: { facts: [] } }
  const plain = await call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'hello' })
  t.match(plain.body.data, { memories_updated: false, memories_count: 0 })
})

t.test('extraction that fails or outlives its bound never costs the reply', async (t) => {
  const dir = t.testdir()
  const { stream, upstream, agentId, call, app } = await setup(t, { extractionTimeoutMs: 50, databaseUrl: `sqlite:${dir}/agentmem.db` })
  upstream.jsonScript = { json: { wrong: 'shape' } }
  const broken = stream('org-a', agentId, { message: 'hi' })
  await broken.ended
  t.match(broken.events.at(-2)?.json, { chunk_type: 'memory_update', content: 'extraction_failed', memories_count: 0 })
  t.equal(broken.last()?.chunk_type, 'done')
  for (const script of [{ status: 500 }, {}] as UpstreamScript[]) {
    upstream.jsonScript = script
    const failing = stream('org-a', agentId, { message: 'hi' })
    await failing.ended
    t.match(failing.events.at(-2)?.json, { content: 'extraction_failed' }, `extraction upstream ${JSON.stringify(script)}`)
    t.equal(failing.last()?.chunk_type, 'done')
  }

  const fact = (content: string): UpstreamScript => ({ jsonDelayMs: 300, json: { facts: [{ action: 'ADD', content, memory_type: 'Semantic', importance: 0.5, target_id: null }] } })
  upstream.jsonScript = fact('User is patient')
  const slow = stream('org-a', agentId, { message: 'take your time' })
  await slow.ended
  t.match(slow.events.at(-2)?.json, { chunk_type: 'memory_update', content: 'extraction_deferred', memories_count: 0 })
  t.equal(slow.last()?.chunk_type, 'done')
  const contents = async (): Promise<string[]> => ((await call('org-a', 'GET', `/api/v1/agents/${agentId}/memories`)).body.data as Mem[]).map((m) => m.content)
  t.notOk((await contents()).includes('User is patient'), 'not there when done went out')
  t.ok(await poll(async () => (await contents()).includes('User is patient')), 'the extraction finished in the background')

  // A shutdown waits for extractions still running, so nothing announced as pending is lost.
  upstream.jsonScript = fact('User said bye')
  await stream('org-a', agentId, { message: 'bye' }).ended
  t.notOk((await contents()).includes('User said bye'))
  await app.close()
  const reopened = new SqliteStore(`${dir}/agentmem.db`)
  t.teardown(() => reopened.close())
  const { memories: stored } = await reopened.listMemories('org-a', { agentId, limit: 50, offset: 0 })
  t.ok(stored.some((m) => m.content === 'User said bye'), 'written before the store closed')
})

t.test('a disconnect during a tool call aborts the tool\'s signal', async (t) => {
  let toolSignal: AbortSignal | undefined
  const { stream, upstream, agentId, ends, app } = await setup(t, {}, {
    tools: [{
      name: 'wait_forever',
      description: 'waits',
      parameters: { type: 'object' },
      handler: async (_args, ctx) => {
        toolSignal = ctx.signal
        return await new Promise(() => {})
      }
    }]
  })
  upstream.queue.push({ tokens: [], toolCalls: [{ name: 'wait_forever', fragments: ['{}'] }] })
  const client = stream('org-a', agentId, { message: 'go' })
  await client.until((c) => c.types().includes('tool_call'))
  client.destroy()
  await until(() => app.streams().length === 0, 5000, 'every stream released')
  t.equal(toolSignal?.aborted, true)
  t.equal(ends.at(-1)?.outcome, 'client_gone')
})

t.test('with EMBEDDING_MODEL, memories are embedded and vector matches fused with BM25', async (t) => {
  const { upstream, agentId, addMemory, call, stream } = await setup(t, { embeddingModel: 'embed-test' })
  const zzz = await addMemory('zzz')
  await addMemory('User likes tea')
  t.same(upstream.embeddingRequests, [['zzz'], ['User likes tea']], 'each memory embedded once on write')
  const search = await call('org-a', 'GET', `/api/v1/agents/${agentId}/memories/search?q=zzzz`)
  t.same((search.body.data as Mem[]).map((m) => m.id)[0], zzz.id, 'found by vector alone: no word in common')
  t.same(upstream.embeddingRequests.at(-1), ['zzzz'])
  await call('org-a', 'PUT', `/api/v1/memories/${zzz.id}`, { content: 'qqq' })
  t.same(upstream.embeddingRequests.at(-1), ['qqq'], 're-embedded when the text changes')
  await call('org-a', 'PUT', `/api/v1/memories/${zzz.id}`, { importance: 0.9 })
  t.same(upstream.embeddingRequests.at(-1), ['qqq'], 'not when only metadata changes')
  const found = await call('org-a', 'GET', `/api/v1/agents/${agentId}/memories/search?q=qqqq`)
  t.equal((found.body.data as Mem[])[0]?.id, zzz.id, 'the vector kept its memory through a metadata update')
  await stream('org-a', agentId, { message: 'qqqq tea' }).ended
  t.match(upstream.requests[0]?.body.messages[1]?.content, /"qqq"\n"User likes tea"|"User likes tea"\n"qqq"/)

  upstream.embeddingStatus = 503
  const down = await call('org-a', 'POST', `/api/v1/agents/${agentId}/memories`, { content: 'not embeddable' })
  t.equal(down.status, 502, 'an embeddings outage is an upstream error, not a 500')
  t.match(down.body, { code: 'UPSTREAM_ERROR', message: /503/ })
  t.same((await call('org-a', 'GET', `/api/v1/agents/${agentId}/memories/search?q=not+embeddable`)).status, 502)
})

t.test('EMBEDDING_TIMEOUT_MS bounds a memory route\'s embedding: 502, nothing stored', async (t) => {
  const { upstream, agentId, call } = await setup(t, { embeddingModel: 'embed-test', embeddingTimeoutMs: 100, toolTimeoutMs: 60_000 })
  upstream.embeddingDelayMs = 5_000
  const slow = await call('org-a', 'POST', `/api/v1/agents/${agentId}/memories`, { content: 'embedded too slowly' })
  t.equal(slow.status, 502)
  t.match(slow.body, { code: 'UPSTREAM_ERROR' })
  upstream.embeddingDelayMs = 0
  const listed = await call('org-a', 'GET', `/api/v1/agents/${agentId}/memories`)
  t.same(listed.body.data, [], 'the memory was not stored without its vector')
})

t.test('the offline demo shows every event type', async (t) => {
  const { stream, createAgent, call } = await startApp(t)
  const agentId = await createAgent('org-a')
  const intro = stream('org-a', agentId, { message: 'Hi, my name is Ada and I love green tea.' })
  await intro.ended
  t.match(intro.events.at(-2)?.json, { memories_count: 2, memories: [{ op: 'ADD', content: "User's name is Ada" }, { op: 'ADD', content: 'User likes green tea' }] })
  const remember = stream('org-a', agentId, { message: 'remember that my cat is called Tom' })
  await remember.ended
  t.same([...new Set(remember.types())], ['start', 'tool_call', 'content', 'memory_update', 'done'])
  t.match(remember.text(), /^I ran save_memory: \{"id":"mem-/)
  const recall = stream('org-a', agentId, { message: 'what do you remember about my cat?' })
  await recall.ended
  t.match(recall.text(), /my cat is called Tom/)
  const name = stream('org-a', agentId, { message: 'What is my name?' })
  await name.ended
  t.match(name.text(), /I remember: .*User's name is Ada/)
  const renamed = stream('org-a', agentId, { message: 'Actually my name is Grace' })
  await renamed.ended
  t.match(renamed.events.at(-2)?.json, { memories_count: 1, memories: [{ op: 'UPDATE', content: "User's name is Grace", previous: "User's name is Ada" }] })
  const plain = await call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'I live in Oslo' })
  t.match(plain.body.data, { memories_updated: true, memories_count: 1 })
})

async function poll (check: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return false
}

t.test('many extractions at once share one bound without Node warning about its listeners', async (t) => {
  const { upstream, agentId, stream } = await setup(t)
  upstream.script = { tokens: ['ok'] }
  // Held, so every extraction of the batch listens to the shared signal at the same time.
  upstream.jsonScript = { json: { facts: [] }, jsonDelayMs: 300 }
  const warnings: Error[] = []
  const onWarning = (w: Error): void => { warnings.push(w) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const clients = Array.from({ length: 15 }, (_, i) => stream('org-a', agentId, { message: `my name is Ada ${i}` }))
  await Promise.all(clients.map(async (c) => await c.ended))
  await until(() => upstream.jsonRequests.length === 15, 5000, 'all fifteen extractions to reach the upstream')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message), [])
})
