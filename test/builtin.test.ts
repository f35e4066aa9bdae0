import t from 'tap'
import { BuiltinProvider, composeReply, tokenize } from '../lib/llm/builtin.js'
import { memoryBlock } from '../lib/chat/prompt.js'
import { record, RecordingHandler, type Pushed } from './helpers/reply.js'

t.test('tokens concatenate back to the reply exactly', async (t) => {
  for (const text of ['You said: hi', '  leading and trailing  ', 'multi\nline\ttext', '']) {
    t.equal(tokenize(text).join(''), text)
  }
  t.same(tokenize('a b'), ['a ', 'b'])
})

t.test('replies from the last user message; deterministic', async (t) => {
  t.equal(composeReply([{ role: 'system', content: 's' }, { role: 'user', content: 'one' }, { role: 'assistant', content: 'x' }, { role: 'user', content: 'two' }]), 'You said: two')
  t.equal(composeReply([]), 'You said: ')
  const llm = new BuiltinProvider({ tokenDelayMs: 0 })
  const out = await record(await llm.open({ messages: [{ role: 'user', content: 'hello world' }], signal: new AbortController().signal }))
  t.same(out, [
    { type: 'text', text: 'You ' }, { type: 'text', text: 'said: ' }, { type: 'text', text: 'hello ' }, { type: 'text', text: 'world' },
    { type: 'usage', usage: { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 } }
  ])
})

t.test('an abort stops it between tokens, and an aborted request does not open', async (t) => {
  const llm = new BuiltinProvider({ tokenDelayMs: 5 })
  const controller = new AbortController()
  const seen: string[] = []
  const reply = await llm.open({ messages: [{ role: 'user', content: 'a b c d e f' }], signal: controller.signal })
  await t.rejects(record(reply, (h) => {
    const last = h.pushed.at(-1)
    if (last?.type === 'text') seen.push(last.text)
    if (seen.length === 2) controller.abort(new Error('stop'))
  }), /stop/)
  t.equal(seen.length, 2)
  await t.rejects(llm.open({ messages: [], signal: controller.signal }), /stop/)
  const noDelay = new BuiltinProvider({ tokenDelayMs: 0 })
  const c2 = new AbortController()
  const got: Pushed[] = []
  await t.rejects(record(await noDelay.open({ messages: [{ role: 'user', content: 'x y' }], signal: c2.signal }), (h) => {
    got.push(...h.pushed.splice(0))
    c2.abort(new Error('now'))
  }), /now/)
  t.same(got, [{ type: 'text', text: 'You ' }], 'stops even with no delay between tokens')
})

t.test('a paused handler gets nothing more until its promise settles', async (t) => {
  const llm = new BuiltinProvider({ tokenDelayMs: 0 })
  let resume = (): void => {}
  const handler = new RecordingHandler((h) => {
    if (h.pushed.length === 1) h.paused = new Promise((resolve) => { resume = () => { h.paused = null; resolve() } })
  })
  const piping = llm.open({ messages: [{ role: 'user', content: 'a b' }], signal: new AbortController().signal }).then(async (r) => { await r.pipe(handler) })
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(handler.pushed, [{ type: 'text', text: 'You ' }], 'one token, then it waits')
  resume()
  await piping
  t.same(handler.pushed.map((p) => p.type), ['text', 'text', 'text', 'text', 'usage'], 'the rest after resume')
})

t.test('tool phrases call only the tools offered, each call whole', async (t) => {
  const llm = new BuiltinProvider({ tokenDelayMs: 0 })
  const run = async (content: string, tools: string[]): Promise<Pushed[]> => await record(await llm.open({
    messages: [{ role: 'user', content }],
    tools: tools.map((name) => ({ name, description: '', parameters: {} })),
    signal: new AbortController().signal
  }))
  const saved = await run('Remember: that I like tea', ['save_memory'])
  t.match(saved, [{ type: 'tool_call', call: { name: 'save_memory', id: /^call-builtin-/ } }, { type: 'usage' }])
  t.same(JSON.parse((saved[0] as { call: { arguments: string } }).call.arguments), { content: 'I like tea' })
  t.match((await run('What do you remember about my cat?', ['search_memory']))[0], { call: { name: 'search_memory' } })
  t.match((await run('hey, what time is it', ['current_time']))[0], { call: { name: 'current_time' } })
  t.match((await run('remember that I like tea', []))[0], { type: 'text', text: 'You ' }, 'not offered: it just answers')
})

t.test('after a tool result it reports it; with memories in context it recalls them', async (t) => {
  t.equal(composeReply([
    { role: 'user', content: 'hello' },
    { role: 'assistant', content: 'You said: hello' },
    { role: 'user', content: 'what time is it' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'current_time', arguments: '{}' } }] },
    { role: 'tool', tool_call_id: 'c1', content: '{"now":"x"}' }
  ]), 'I ran current_time: {"now":"x"}')
  t.equal(composeReply([
    { role: 'system', content: memoryBlock(['User likes tea', 'User lives in Paris']) },
    { role: 'user', content: 'hi' }
  ]), 'You said: hi I remember: User likes tea; User lives in Paris')
})
