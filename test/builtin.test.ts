import t from 'tap'
import { BuiltinProvider, composeReply, tokenize } from '../lib/llm/builtin.js'
import type { LlmDelta } from '../lib/llm/provider.js'

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
  const out: LlmDelta[] = []
  for await (const d of await llm.open({ messages: [{ role: 'user', content: 'hello world' }], signal: new AbortController().signal })) out.push(d)
  t.same(out, [
    { type: 'text', text: 'You ' }, { type: 'text', text: 'said: ' }, { type: 'text', text: 'hello ' }, { type: 'text', text: 'world' },
    { type: 'usage', usage: { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 } }
  ])
})

t.test('an abort stops it between tokens, and an aborted request does not open', async (t) => {
  const llm = new BuiltinProvider({ tokenDelayMs: 5 })
  const controller = new AbortController()
  const seen: string[] = []
  const deltas = await llm.open({ messages: [{ role: 'user', content: 'a b c d e f' }], signal: controller.signal })
  await t.rejects(async () => {
    for await (const d of deltas) {
      if (d.type === 'text') seen.push(d.text)
      if (seen.length === 2) controller.abort(new Error('stop'))
    }
  }, /stop/)
  t.equal(seen.length, 2)
  await t.rejects(llm.open({ messages: [], signal: controller.signal }), /stop/)
  const noDelay = new BuiltinProvider({ tokenDelayMs: 0 })
  const c2 = new AbortController()
  const it = await noDelay.open({ messages: [{ role: 'user', content: 'x y' }], signal: c2.signal })
  const got: string[] = []
  await t.rejects(async () => {
    for await (const d of it) {
      if (d.type === 'text') got.push(d.text)
      c2.abort(new Error('now'))
    }
  }, /now/)
  t.same(got, ['You '], 'stops even with no delay between tokens')
})
