import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { frameEvent } from '../lib/sse/frame.js'
import { ReplayBudget, ReplayLog } from '../lib/stream/replay-log.js'
import { contentLiteral, makeChunk, serializeChunk } from '../lib/protocol/chunk.js'
import { acceptsGzip } from '../lib/http/accept-encoding.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** An event's data line: every event of a stream is a JSON object. */
const line = (d: string): string => JSON.stringify({ d })

t.test('numbers events from 1 and replays what came after a cursor', async (t) => {
  const log = new ReplayLog({ maxEvents: 100, maxBytes: 1 << 20 })
  t.same(log.after(0), [], 'nothing yet')
  for (const d of ['a', 'b', 'c']) log.append(line(d))
  t.equal(log.lastId, 3)
  t.same(log.after(0)?.map((e) => e.id), [1, 2, 3])
  t.same(log.after(1)?.map((e) => e.frame), ['id: 2\ndata: {"d":"b"}\n\n', 'id: 3\ndata: {"d":"c"}\n\n'])
  t.same(log.after(3), [])
  t.notOk(log.ended)
  log.end()
  t.ok(log.ended)
})

t.test('bounded by count and bytes; a cursor that fell off is reported, the newest event always kept', async (t) => {
  const byCount = new ReplayLog({ maxEvents: 2, maxBytes: 1 << 20 })
  for (let i = 0; i < 5; i++) byCount.append(line(String(i)))
  t.same(byCount.after(3)?.map((e) => e.id), [4, 5])
  t.equal(byCount.after(2), null, 'event 3 is gone')
  byCount.end()
  t.same(byCount.after(3)?.map((e) => e.frame), [`id: 4\ndata: ${line('3')}\n\n`, `id: 5\ndata: ${line('4')}\n\n`], 'ended, it keeps the same events')
  t.equal(byCount.after(2), null, 'and the same cursor is too old')
  const byBytes = new ReplayLog({ maxEvents: 100, maxBytes: 60 })
  byBytes.append(line('x'.repeat(10)))
  byBytes.append(line('y'.repeat(10)))
  t.equal(byBytes.after(0), null)
  t.same(byBytes.after(1)?.map((e) => e.id), [2])
  byBytes.append(line('z'.repeat(100)))
  t.same(byBytes.after(2)?.map((e) => e.id), [3], 'an event larger than the bound still stays')
  t.ok(byBytes.bytes > 60)
})

t.test('long streams compact the dropped prefix and keep ids right', async (t) => {
  const log = new ReplayLog({ maxEvents: 10, maxBytes: 1 << 20 })
  for (let i = 1; i <= 5000; i++) log.append(line(String(i)))
  t.same(log.after(4990)?.map((e) => e.frame), Array.from({ length: 10 }, (_, i) => `id: ${4991 + i}\ndata: ${line(String(4991 + i))}\n\n`))
  t.equal(log.after(4989), null)
})

t.test('Accept-Encoding: gzip only when allowed', async (t) => {
  const cases: Array<[string | undefined, boolean]> = [
    [undefined, false], ['', false], ['identity', false], ['gzip', true], ['br, gzip', true], ['GZIP;q=0.5', true],
    ['gzip;q=0', false], ['gzip; q=0.0', false], ['*', true], ['*;q=0', false], ['br, *', true], ['x-gzip', true], ['gzip;q=0, *', false]
  ]
  for (const [header, expected] of cases) t.equal(acceptsGzip(header), expected, String(header))
})

t.test('the byte bound counts each event\'s bookkeeping, not only its characters', async (t) => {
  const data = line('x'.repeat(20))
  const size = data.length + 40
  const log = new ReplayLog({ maxEvents: 100, maxBytes: 3 * size })
  for (let i = 0; i < 4; i++) log.append(data)
  t.equal(log.after(0), null, 'four events of that size do not fit, though their characters would')
  t.same(log.after(1)?.map((e) => e.id), [2, 3, 4])
  t.equal(log.bytes, 3 * size)
  t.equal(log.totalBytes, 4 * frameEvent(data, { id: '1' }).length, 'the byte count of what was sent is its frames\' characters')
})

t.test('a dropped event is let go at once, not kept until the array is compacted', async (t) => {
  const heap = (): number => {
    gc()
    return process.memoryUsage().heapUsed
  }
  const log = new ReplayLog({ maxEvents: 3, maxBytes: 64 << 20 })
  const base = heap()
  log.append(line('x'.repeat(16 << 20)))
  t.ok(heap() - base > 15 << 20, 'a 16 MiB event is held while it is in the log')
  for (let i = 0; i < 10; i++) log.append(line(`next ${i}`))
  t.equal(log.after(0), null, 'the first event is out of the log')
  // A macrotask between collections, as V8 may keep what the running job touched.
  await new Promise((resolve) => setImmediate(resolve))
  t.ok(heap() - base < 1 << 20, 'and nothing holds it any more')
  t.same(log.after(8)?.map((e) => e.id), [9, 10, 11], 'what is kept still replays')
})

t.test('live logs share one budget: past it the longest give up their oldest events first', async (t) => {
  const budget = new ReplayBudget(10_000)
  const limits = { maxEvents: 10_000, maxBytes: 1 << 20 }
  const short = new ReplayLog(limits, 's2:', budget)
  const long = new ReplayLog(limits, 's1:', budget)
  const data = line('x'.repeat(92))
  for (let i = 0; i < 80; i++) long.append(data)
  for (let i = 0; i < 10; i++) short.append(data)
  t.ok(budget.bytes <= 10_000, `within the budget (${budget.bytes})`)
  t.equal(budget.bytes, long.bytes + short.bytes, 'the budget counts what the logs hold')
  t.same(short.after(0)?.map((e) => e.id), Array.from({ length: 10 }, (_, i) => i + 1), 'the short log kept all its events')
  t.equal(long.after(0), null, 'the long one lost its oldest: a resume from its start gets 410')
  t.equal(long.after(long.lastId - 1)?.[0]?.id, 80, 'its newest are kept')

  // Equal logs shrink together.
  const even = new ReplayBudget(10_000)
  const logs = [0, 1, 2].map((i) => new ReplayLog(limits, `e${i}:`, even))
  for (let round = 0; round < 40; round++) for (const log of logs) log.append(data)
  t.ok(even.bytes <= 10_000)
  const sizes = logs.map((l) => l.bytes)
  t.ok(Math.max(...sizes) - Math.min(...sizes) <= 2 * 200, `no log was emptied for the others (${sizes.join(', ')})`)

  // An ended log leaves the live budget (the ended streams have a budget of their own).
  const before = budget.bytes
  const held = short.bytes
  short.end()
  t.equal(budget.bytes, before - held)
  short.end()
  t.equal(budget.bytes, before - held, 'once')

  // A single event larger than the budget stays: the newest is never dropped.
  const tiny = new ReplayBudget(1024)
  const big = new ReplayLog(limits, 'b:', tiny)
  big.append(line('y'.repeat(5000)))
  t.equal(big.lastId, 1)
  t.same(big.after(0)?.map((e) => e.id), [1])
})

t.test('a content event is kept as its text\'s JSON string and replayed as the very frame that was sent', async (t) => {
  const log = new ReplayLog({ maxEvents: 100, maxBytes: 1 << 20 }, 'st:')
  const texts = ['Hel', 'lo\n', '{"not":"a line"}', '', '\u2028 "quoted" \\', '{']
  const start = serializeChunk(makeChunk('start', {}, { stream_id: 'st' }))
  const done = serializeChunk(makeChunk('done', { memories_count: 0 }))
  const sent = [log.append(start)]
  for (const text of texts) sent.push(log.appendContent(contentLiteral(text)))
  sent.push(log.append(done))
  t.same(sent.slice(1, -1), texts.map((text, i) => frameEvent(serializeChunk(makeChunk('content', { content: text })), { id: `st:${i + 2}` })), 'each content frame is the chunk\'s')
  t.same(log.after(0)?.map((e) => e.frame), sent, 'replayed byte for byte, text that begins with { included')
  t.same(log.after(3)?.map((e) => e.frame), sent.slice(3), 'from any cursor')
  t.equal(log.totalBytes, sent.join('').length, 'what was sent is counted in frames')
  // Each event costs what it keeps plus 40: a content event its text as a JSON string.
  const kept = [start, ...texts.map(contentLiteral), done]
  t.equal(log.bytes, kept.reduce((sum, entry) => sum + entry.length + 40, 0), 'it holds the words, not their frames')
  t.throws(() => log.append('plain text'), TypeError, 'any other event must be a JSON object line')
  log.end()
  t.same(log.after(0)?.map((e) => e.frame), sent, 'and once ended (a raw line break in a text included)')
  t.same(log.after(4)?.map((e) => e.frame), sent.slice(4), 'from any cursor')
  t.same(log.after(log.lastId), [], 'nothing after the last')
  t.equal(log.bytes, kept.join('\n').length + 40, 'ended, it holds its entries as one string')
  t.throws(() => log.append(done), TypeError, 'and takes no more events')
})
