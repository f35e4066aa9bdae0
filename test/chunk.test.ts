import t from 'tap'
import { contentLineOf, contentLiteral, isEventLine, isKeptEntry, keptLineOf, makeChunk, serializeChunk } from '../lib/protocol/chunk.js'

t.test('every chunk has the four keys first, nulls included, extras after', async (t) => {
  const chunk = makeChunk('start', {}, { stream_id: 's', chunk_type: 'overridden?' })
  t.equal(chunk.chunk_type, 'start', 'extras cannot override the core keys')
  const json = serializeChunk(chunk)
  t.equal(json, '{"chunk_type":"start","content":null,"tool_call":null,"memories_count":null,"stream_id":"s"}')
  t.equal(serializeChunk(makeChunk('memory_update', { memories_count: 2 })),
    '{"chunk_type":"memory_update","content":null,"tool_call":null,"memories_count":2}')
  t.same(JSON.parse(serializeChunk(makeChunk('tool_call', { tool_call: { tool_name: 'x', arguments: { a: 1 } } }))).tool_call,
    { tool_name: 'x', arguments: { a: 1 } })
})

t.test('a chunk not made by makeChunk is still written core keys first', async (t) => {
  const reordered = { content: 'x', memories_count: null, chunk_type: 'content', tool_call: null } as const
  t.equal(serializeChunk(reordered), '{"chunk_type":"content","content":"x","tool_call":null,"memories_count":null}')
  const numbered = makeChunk('done', {}, { 7: 'seven', code: 'c' })
  t.equal(serializeChunk(numbered), '{"chunk_type":"done","content":null,"tool_call":null,"memories_count":null,"7":"seven","code":"c"}', 'an integer-like extra key after them, where JSON.stringify would put it first')
  t.equal(serializeChunk(makeChunk('start', {}, { note: 'line\u2028break' })), '{"chunk_type":"start","content":null,"tool_call":null,"memories_count":null,"note":"line\\u2028break"}', 'a separator in an extra is escaped on the fast path too')
  const proto = makeChunk('start', {}, JSON.parse('{"__proto__":{"a":1}}') as Record<string, unknown>)
  t.equal(Object.getPrototypeOf(proto), Object.prototype, 'an extra named __proto__ is a key, not a prototype')
  t.equal(serializeChunk(proto), '{"chunk_type":"start","content":null,"tool_call":null,"memories_count":null,"__proto__":{"a":1}}')
})

t.test('the content fast path equals the general serializer, for awkward text too', async (t) => {
  for (const text of ['Once upon a time...', 'quote " backslash \\ newline \n', '\u2028\u2029', '\ud800 lone', 'emoji 🤖', '']) {
    t.equal(contentLineOf(contentLiteral(text)), serializeChunk(makeChunk('content', { content: text })))
    t.same(JSON.parse(contentLineOf(contentLiteral(text))), { chunk_type: 'content', content: text, tool_call: null, memories_count: null })
  }
})

t.test('kept entries: an event line stays itself, a content literal becomes its line, a frame is neither', async (t) => {
  const line = serializeChunk(makeChunk('done', { memories_count: 0 }))
  const literal = contentLiteral('hi "there"')
  const frame = `id: s:1\ndata: ${line}\n\n`
  t.ok(isEventLine(line))
  t.notOk(isEventLine(literal))
  t.ok(isKeptEntry(line))
  t.ok(isKeptEntry(literal))
  t.notOk(isKeptEntry(frame), 'a whole frame (as a shared log holds a lost producer\'s terminal event) is not an entry')
  t.equal(keptLineOf(line), line)
  t.equal(keptLineOf(literal), serializeChunk(makeChunk('content', { content: 'hi "there"' })))
})

t.test('the serializer writes the same JSON as JSON.stringify, with the core keys first, for any extras', async (t) => {
  const { default: fc } = await import('fast-check')
  const extras = fc.dictionary(fc.string(), fc.oneof(fc.jsonValue(), fc.constant(undefined)))
  fc.assert(fc.property(fc.constantFrom('start', 'done', 'error', 'memory_update'), fc.option(fc.string()), extras, (type, content, extra) => {
    const chunk = makeChunk(type, { content }, extra)
    const { chunk_type: chunkType, content: c, tool_call: toolCall, memories_count: count, ...rest } = chunk
    const reference = JSON.stringify({ chunk_type: chunkType, content: c, tool_call: toolCall, memories_count: count, ...rest })
    const json = serializeChunk(chunk)
    // JSON.stringify would put integer-like extra keys before the core ones; the serializer never does.
    const core = `{"chunk_type":"${type}","content":${JSON.stringify(content)},"tool_call":null,"memories_count":null`
    return json.startsWith(core) && JSON.stringify(JSON.parse(json)) === JSON.stringify(JSON.parse(reference))
  }))
  t.pass('100 random chunks matched')
})
