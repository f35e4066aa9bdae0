import t from 'tap'
import { BuiltinProvider, composeReply, countTokens } from '../lib/llm/builtin.js'
import { memoryBlock } from '../lib/chat/prompt.js'
import { piped, record, RecordingHandler, type Pushed } from './helpers/reply.js'

t.test('its tokens concatenate back to the reply exactly, as many as countTokens counts', async (t) => {
  const llm = new BuiltinProvider({ tokenDelayMs: 0 })
  for (const message of ['hi', '  leading and trailing  ', 'multi\nline\ttext', '', 'one', '\u00a0nbsp\u2028sep', 'ends in spaces   ']) {
    const out = await record(await llm.open({ messages: [{ role: 'user', content: message }], signal: new AbortController().signal }))
    const texts = out.flatMap((p) => p.type === 'text' ? [p.text] : [])
    const reply = `You said: ${message}`
    t.equal(texts.join(''), reply, `tokens of ${encodeURIComponent(message)}`)
    t.equal(texts.length, countTokens(reply), 'counted as streamed')
    t.match(out.at(-1), { type: 'usage', usage: { completion_tokens: texts.length } }, 'and reported as the completion')
  }
  t.equal(countTokens(''), 0)
  t.equal(countTokens('a b c'), 3, 'and again: the shared expression starts over each time')
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
  const piping = llm.open({ messages: [{ role: 'user', content: 'a b' }], signal: new AbortController().signal }).then(async (r) => { await piped(r, handler) })
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

t.test('with a delay, tokens come one per delay and an abort ends the wait at once', async (t) => {
  const llm = new BuiltinProvider({ tokenDelayMs: 30 })
  const whole = await record(await llm.open({ messages: [{ role: 'user', content: 'a b c' }], signal: new AbortController().signal }))
  t.same(whole.map((p) => p.type === 'text' ? p.text : p.type), ['You ', 'said: ', 'a ', 'b ', 'c', 'usage'], 'every token, then usage, over one re-armed timer')
  const slow = new BuiltinProvider({ tokenDelayMs: 60_000 })
  const controller = new AbortController()
  const reply = await slow.open({ messages: [{ role: 'user', content: 'a b' }], signal: controller.signal })
  const handler = new RecordingHandler()
  const piping = piped(reply, handler)
  t.same(handler.pushed, [{ type: 'text', text: 'You ' }], 'the first token at once, then the wait')
  const startedAt = performance.now()
  setTimeout(() => { controller.abort(new Error('gone')) }, 10)
  await t.rejects(piping, /gone/, 'rejects with the reason')
  t.ok(performance.now() - startedAt < 5_000, 'long before the next token was due')
  t.equal(handler.pushed.length, 1, 'nothing after the abort')
})

t.test('an abort while the handler is paused ends the reply; a rejected pause rejects it', async (t) => {
  const llm = new BuiltinProvider({ tokenDelayMs: 0 })
  const controller = new AbortController()
  let fail = (_: Error): void => {}
  const never = new RecordingHandler((h) => { h.paused = new Promise((_resolve, reject) => { fail = reject }) })
  const piping = piped(await llm.open({ messages: [{ role: 'user', content: 'a b' }], signal: controller.signal }), never)
  controller.abort(new Error('left'))
  fail(new Error('the pause failed later'))
  await t.rejects(piping, /left/, 'the abort decides; the later failure changes nothing')
  t.equal(never.pushed.length, 1)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(never.ends, 1, 'one end: the pause that failed after it said nothing more')
  const broken = new RecordingHandler((h) => { h.paused = Promise.reject(new Error('sink broke')) })
  await t.rejects(piped(await llm.open({ messages: [{ role: 'user', content: 'a b' }], signal: new AbortController().signal }), broken), /sink broke/)
  t.equal(broken.pushed.length, 1, 'no token after the failed pause')
})

t.test('a pause after the last token holds the end of the reply until it settles', async (t) => {
  const llm = new BuiltinProvider({ tokenDelayMs: 0 })
  let resume = (): void => {}
  const handler = new RecordingHandler((h) => {
    if (h.pushed.length === 4) h.paused = new Promise((resolve) => { resume = () => { h.paused = null; resolve() } })
  })
  let ended = false
  const piping = piped(await llm.open({ messages: [{ role: 'user', content: 'a b' }], signal: new AbortController().signal }), handler).then(() => { ended = true })
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(handler.pushed.map((p) => p.type), ['text', 'text', 'text', 'text'], 'all four tokens, no usage yet')
  t.equal(ended, false, 'not ended while the reader catches up')
  resume()
  await piping
  t.same(handler.pushed.map((p) => p.type), ['text', 'text', 'text', 'text', 'usage'])
  const controller = new AbortController()
  const nullReason = piped(await llm.open({ messages: [{ role: 'user', content: 'a b' }], signal: controller.signal }), new RecordingHandler((h) => { if (h.pushed.length === 1) controller.abort(null) }))
  await t.rejects(nullReason, 'an abort whose reason is null still fails the reply')
})

t.test('a handler that throws ends the reply with its error, once, even from the timer between tokens', async (t) => {
  for (const tokenDelayMs of [0, 5]) {
    const llm = new BuiltinProvider({ tokenDelayMs })
    const handler = new RecordingHandler((h) => { if (h.pushed.length === 2) throw new Error('handler broke') })
    await t.rejects(piped(await llm.open({ messages: [{ role: 'user', content: 'a b c' }], signal: new AbortController().signal }), handler), /handler broke/, `delay ${tokenDelayMs}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
    t.same([handler.ends, handler.pushedAfterEnd, handler.pushed.length], [1, 0, 2], 'one end, nothing after it')
  }
})
