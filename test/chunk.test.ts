import t from 'tap'
import { makeChunk, serializeChunk, serializeContent } from '../lib/sse/chunk.js'

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

t.test('the content fast path equals the general serializer, for awkward text too', async (t) => {
  for (const text of ['Once upon a time...', 'quote " backslash \\ newline \n', '\u2028\u2029', '\ud800 lone', 'emoji 🤖', '']) {
    t.equal(serializeContent(text), serializeChunk(makeChunk('content', { content: text })))
    t.same(JSON.parse(serializeContent(text)), { chunk_type: 'content', content: text, tool_call: null, memories_count: null })
  }
})
