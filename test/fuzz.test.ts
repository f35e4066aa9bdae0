import t from 'tap'
import fc from 'fast-check'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { frameComment, frameEvent } from '../lib/sse/frame.js'
import { storableText } from '../lib/http/body.js'
import { makeChunk, serializeChunk } from '../lib/protocol/chunk.js'
import { IllegalTransitionError, StreamStateMachine, type ChunkType } from '../lib/protocol/state-machine.js'

const nasty = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.array(fc.constantFrom('\r', '\n', '\r\n', '\0', '\u2028', '\u2029', '\u0085', '\v', '\f', '\x1c', '\x1d', '\x1e', '\ud800', '\udfff', 'data: x', ': c', 'id: 9', 'é', '🤖', ' '), { maxLength: 30 }).map((a) => a.join(''))
)

function parse (wire: string): { events: EventSourceMessage[], comments: string[] } {
  const out = { events: [] as EventSourceMessage[], comments: [] as string[] }
  const parser = createParser({ onEvent: (e) => out.events.push(e), onComment: (c) => out.comments.push(c) })
  parser.feed(wire)
  return out
}

t.test('any sequence of framed writes parses back to the same events (line breaks normalized to LF)', async (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(nasty, fc.boolean()), { maxLength: 20 }), (writes) => {
    let wire = ''
    const expected: string[] = []
    writes.forEach(([data, withComment], i) => {
      if (withComment) wire += frameComment('keep-alive')
      wire += frameEvent(data, { id: String(i + 1) })
      expected.push(data.replace(/\r\n|\r/g, '\n'))
    })
    const { events } = parse(wire)
    return events.length === expected.length &&
      events.every((e, i) => e.data === expected[i] && e.id === String(i + 1))
  }), { numRuns: 500 })
  t.pass('500 random write sequences round-tripped')
})

t.test('any text in a chunk survives JSON and SSE framing intact', async (t) => {
  fc.assert(fc.property(nasty, (text) => {
    const wire = frameEvent(serializeChunk(makeChunk('content', { content: text }))) + frameEvent(serializeChunk(makeChunk('error', { content: text }, { code: text })))
    const [content, error] = parse(wire).events.map((e) => JSON.parse(e.data) as Record<string, unknown>)
    // Every code point some line reader splits at (str.splitlines(): LF, CR, VT, FF, FS, GS, RS,
    // NEL, LS, PS) stays out of the data lines, so no consumer splits an event's JSON.
    const dataLines = wire.split('\n').filter((l) => l.startsWith('data: '))
    const unsplittable = dataLines.length === 2 && dataLines.every((l) => !/[\r\v\f\x1c-\x1e\u0085\u2028\u2029]/.test(l))
    return unsplittable && content?.content === text && error?.content === text && error.code === text && Object.keys(content).length === 4
  }), { numRuns: 500 })
  t.pass('500 random texts, none with a raw line-breaking code point on the wire')
})

t.test('no sequence of events gets the state machine past its rules', async (t) => {
  const events: Array<ChunkType | 'close'> = ['start', 'content', 'reasoning', 'tool_call', 'memory_update', 'done', 'error', 'close']
  fc.assert(fc.property(fc.array(fc.constantFrom(...events), { maxLength: 25 }), (sequence) => {
    const sm = new StreamStateMachine()
    let terminals = 0
    let started = false
    for (const event of sequence) {
      const before = sm.state
      try {
        if (event === 'close') sm.close()
        else sm.transition(event)
      } catch (err) {
        if (!(err instanceof IllegalTransitionError) || sm.state !== before) return false
        continue
      }
      if (event === 'start') started = true
      if (event === 'done' || event === 'error') terminals++
      if (!started) return false
      if (terminals > 1) return false
      if (sm.terminated && event !== 'done' && event !== 'error' && event !== 'close') return false
    }
    return true
  }), { numRuns: 2000 })
  t.pass('2000 random sequences: start first, at most one terminal, nothing after it')
})

t.test('storableText: any string comes out well-formed, NUL-free, and clean strings pass unchanged', async (t) => {
  fc.assert(fc.property(nasty, (text) => {
    const out = storableText(text)
    const clean = text.isWellFormed() && !text.includes('\0')
    return out.isWellFormed() && !out.includes('\0') && out.length === text.length && (!clean || out === text)
  }), { numRuns: 500 })
  t.pass('500 random strings')
})
