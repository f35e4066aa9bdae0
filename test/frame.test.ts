import t from 'tap'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { frameComment, frameEvent, frameNumbered, frameRetry, FramingError, idLineOf } from '../lib/sse/frame.js'

function parse (wire: string): { events: EventSourceMessage[], comments: string[], retry: number[] } {
  const out = { events: [] as EventSourceMessage[], comments: [] as string[], retry: [] as number[] }
  const parser = createParser({
    onEvent: (e) => out.events.push(e),
    onComment: (c) => out.comments.push(c),
    onRetry: (r) => out.retry.push(r)
  })
  parser.feed(wire)
  return out
}

t.test('single-line data is one data line', async (t) => {
  t.equal(frameEvent('{"a":1}'), 'data: {"a":1}\n\n')
  t.equal(frameEvent('x', { id: '7', event: 'message' }), 'id: 7\nevent: message\ndata: x\n\n')
})

t.test('CR, LF and CRLF inside data become separate data lines and parse back joined by LF', async (t) => {
  const cases: Array<[string, string]> = [
    ['a\nb', 'a\nb'],
    ['a\rb', 'a\nb'],
    ['a\r\nb', 'a\nb'],
    ['\n\nx\r\r', '\n\nx\n\n'],
    ['line\u2028sep\0nul', 'line\u2028sep\0nul'],
    ['', '']
  ]
  // Cases are named by index: a raw U+2028 in an assertion name would break tap's own output lines.
  for (const [i, [data, expected]] of cases.entries()) {
    const wire = frameEvent(data, { id: '1' })
    t.notMatch(wire.slice(0, -2), /\n\n/, `case ${i}: no blank line before the end`)
    const { events } = parse(wire)
    t.equal(events.length, 1, `case ${i}: one event`)
    t.equal(events[0]?.data, expected, `case ${i}: data round-trips`)
    t.equal(events[0]?.id, '1')
  }
})

t.test('id and event with CR, LF or NUL are refused', async (t) => {
  for (const bad of ['a\nb', 'a\rb', 'a\0b']) {
    t.throws(() => frameEvent('x', { id: bad }), FramingError)
    t.throws(() => frameEvent('x', { event: bad }), FramingError)
  }
})

t.test('comments and retry', async (t) => {
  t.equal(frameComment('keep-alive'), ': keep-alive\n', 'a comment line ends no block')
  t.same(parse(frameComment('keep-alive') + frameComment('keep-alive')).events, [], 'comments alone dispatch nothing')
  const multi = parse(frameComment('a\nb') + frameEvent('after'))
  t.same(multi.comments.map((c) => c.trim()), ['a', 'b'])
  t.same(multi.events.map((e) => e.data), ['after'], 'a multi-line comment does not swallow the next event')
  t.equal(frameRetry(2000), 'retry: 2000\n', 'a field line that rides in the next block')
  const withEvent = parse(frameRetry(1500) + frameEvent('first'))
  t.same(withEvent.retry, [1500])
  t.same(withEvent.events.map((e) => e.data), ['first'], 'the block it rides in is the first event')
  t.throws(() => frameRetry(-1), FramingError)
  t.throws(() => frameRetry(1.5), FramingError)
})

t.test('a stream\'s numbered frames are what frameEvent writes for a line of JSON; the prefix is checked once', async (t) => {
  const idLine = idLineOf('abc:')
  // Its data is JSON text, which holds no raw line break (the fuzz tests pin that for every chunk).
  for (const line of ['{"a":1}', '"two\\nlines"', '']) t.equal(frameNumbered(idLine, 7, line), frameEvent(line, { id: 'abc:7' }))
  t.throws(() => idLineOf('bad\nprefix'), FramingError)
})
