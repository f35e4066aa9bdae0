import t from 'tap'
import { EndedStreams } from '../lib/stream/ended-streams.js'
import type { EndedInfo } from '../lib/stream/handle.js'

const TTL = 60_000

let serial = 0
/** An ended stream's record: `lineBytes` of UTF-8 in its lines (one event per 100 bytes or so). */
function info (lineBytes = 300, names: Partial<EndedInfo> = {}): EndedInfo {
  const n = ++serial
  const events = Math.max(1, Math.round(lineBytes / 100))
  const line = (i: number): string => `{"n":${n},"i":${i},"pad":"${'é'.repeat(Math.max(0, Math.floor(lineBytes / events / 2) - 20))}"}`
  return {
    id: `stream-${n}`,
    orgId: 'org',
    userId: `user-${n}`,
    agentId: 'agent-1',
    resumeToken: `token-${n}`,
    lastId: events + 2,
    count: events,
    lines: Array.from({ length: events }, (_, i) => line(i)).join('\n'),
    ...names
  }
}

/** What `get` gives back, as plain fields (the lines through the handle's own check: its newest id). */
function readBack (ended: EndedStreams, id: string, now = 0): { id: string, orgId: string, userId: string, agentId: string, newestId: number } | undefined {
  const handle = ended.get(id, now)
  if (handle === undefined) return undefined
  return { id: handle.id, orgId: handle.orgId, userId: handle.userId, agentId: handle.agentId, newestId: handle.newestId }
}

/** A record of exactly `size` bytes in the ring (a multiple of 8): its header (52), its names as UTF-16, one line of ASCII. */
function sized (size: number): EndedInfo {
  const record = info(100)
  const names = record.id + record.resumeToken + record.orgId + record.userId + record.agentId
  return { ...record, count: 1, lines: 'x'.repeat(size - 52 - 2 * names.length) }
}

/** What one record of `info` costs against the budget. */
function costOf (record: EndedInfo): number {
  const probe = new EndedStreams(1 << 30, TTL)
  probe.add(record, 0)
  return probe.bytes
}

t.test('a kept stream comes back as it was: names, token, ids, ended', async (t) => {
  const ended = new EndedStreams(1 << 20, TTL)
  // A lone surrogate, an astral character, non-ASCII: UTF-16 storage gives each back unchanged.
  const kept = info(500, { userId: 'u-\ud800-x', orgId: 'örg-😀', agentId: 'agent-ß' })
  ended.add(kept, 1000)
  const handle = ended.get(kept.id, 1000)
  t.ok(handle !== undefined)
  t.same(readBack(ended, kept.id, 1000), { id: kept.id, orgId: 'örg-😀', userId: 'u-\ud800-x', agentId: 'agent-ß', newestId: kept.lastId })
  t.equal(handle?.ended, true)
  t.ok(handle?.matchesToken(kept.resumeToken))
  t.notOk(handle?.matchesToken('token-x'), 'another token does not match')
  t.equal(await handle?.cancel(), false, 'an ended stream cannot be cancelled')
  t.equal(ended.get('stream-unknown', 1000), undefined)
  t.equal(ended.size, 1)
})

t.test('over the budget the oldest go first, and the count of bytes stays exact', async (t) => {
  const one = costOf(sized(1000))
  t.equal(one, 1000 + 128, 'a record and its place in the index')
  const ended = new EndedStreams(3 * one, TTL)
  const [a, b, c] = [sized(1000), sized(1000), sized(1000)]
  for (const s of [a, b, c]) ended.add(s, 0)
  t.equal(ended.bytes, 3 * one, 'three fit')
  const d = sized(1000)
  ended.add(d, 0)
  t.same([a, b, c, d].map((s) => ended.get(s.id, 0) !== undefined), [false, true, true, true], 'the oldest, a, went')
  t.equal(ended.bytes, 3 * one)
  // Thousands more through a small ring: it wraps many times and still gives back the newest.
  const many = Array.from({ length: 3000 }, () => sized(1000))
  for (const s of many) ended.add(s, 0)
  t.equal(ended.size, 3)
  t.equal(ended.bytes, 3 * one)
  t.same(many.slice(-4).map((s) => readBack(ended, s.id)?.userId), [undefined, ...many.slice(-3).map((s) => s.userId)])
})

t.test('a stream larger than the budget on its own is not kept, and leaves nothing kept', async (t) => {
  const ended = new EndedStreams(4096, TTL)
  const small = info(200)
  ended.add(small, 0)
  t.equal(ended.size, 1)
  ended.add(info(8000), 0)
  t.equal(ended.size, 0)
  t.equal(ended.bytes, 0)
  t.equal(ended.get(small.id, 0), undefined, 'the older one went first, as the budget has it')
  const zero = new EndedStreams(0, TTL)
  zero.add(info(), 0)
  t.equal(zero.size, 0, 'a budget of 0 keeps nothing')
})

t.test('the TTL: expire() forgets the expired ones from the oldest; a lookup forgets an expired one where it is', async (t) => {
  const ended = new EndedStreams(1 << 20, 1000)
  const [a, b, c] = [info(), info(), info()]
  ended.add(a, 0)
  ended.add(b, 500)
  ended.add(c, 900)
  const one = ended.bytes / 3
  ended.expire(999)
  t.equal(ended.size, 3, 'none expired yet')
  ended.expire(1000)
  t.equal(ended.size, 2, 'a expired at 0 + TTL')
  t.equal(ended.get(a.id, 1000), undefined)
  // c, the newest, was ended at 900; say its clock says it expired (a lookup at 1900) while b,
  // older, was not looked up: c is forgotten out of order, b stays.
  t.equal(ended.get(c.id, 1900), undefined)
  t.equal(ended.size, 1)
  t.equal(ended.bytes, one)
  t.equal(readBack(ended, b.id, 1400)?.userId, b.userId, 'b is still kept within its TTL')
  const d = info()
  ended.add(d, 1400)
  ended.expire(1500)
  t.same([b, d].map((s) => ended.get(s.id, 1500) !== undefined), [false, true], 'the tail skips the forgotten c and reaches d')
  t.equal(ended.size, 1)
  ended.expire(3000)
  t.equal(ended.size, 0)
  t.equal(ended.bytes, 0)
})

t.test('the ring doubles as it fills, wrapped or not, and every kept stream reads back', async (t) => {
  const ended = new EndedStreams(1 << 24, TTL)
  const kept: EndedInfo[] = []
  // Records of ~10 KB: the first ring (64 KiB) holds six; forgetting some and adding more wraps
  // it (padding at its end) before it has to grow.
  for (let i = 0; i < 5; i++) kept.push(info(10_000))
  for (const s of kept) ended.add(s, 0)
  for (const s of kept.splice(0, 3)) t.equal(ended.get(s.id, TTL), undefined, 'expired, out of the way')
  for (let i = 0; i < 200; i++) {
    const s = info(i % 7 === 0 ? 40_000 : 10_000)
    kept.push(s)
    ended.add(s, 0)
  }
  t.equal(ended.size, kept.length)
  for (const s of kept) {
    const back = ended.get(s.id, 0)
    if (back?.userId !== s.userId || back.newestId !== s.lastId || !back.matchesToken(s.resumeToken)) {
      t.fail(`${s.id} did not read back`)
      return
    }
  }
  t.pass('all read back')
  // Emptied, the grown ring is let go; the store goes on.
  ended.expire(TTL)
  t.equal(ended.size, 0)
  const after = info()
  ended.add(after, TTL)
  t.equal(readBack(ended, after.id, TTL)?.userId, after.userId)
})

t.test('at its largest the ring makes room by letting the oldest go, also when only forgotten records fill it', async (t) => {
  // A budget of 64 KiB is the first ring's size: it never grows.
  const ended = new EndedStreams(64 * 1024, TTL)
  const [a, b, c, d] = [sized(10_000), sized(20_000), sized(20_000), sized(20_000)]
  for (const s of [a, b, c]) ended.add(s, 0)
  // d does not fit before the ring's end (15,536 bytes left there): padding, and a and b make
  // room, though the budget would have let b stay.
  ended.add(d, 0)
  t.same([a, b, c, d].map((s) => ended.get(s.id, 0) !== undefined), [false, false, true, true])
  t.equal(ended.bytes, 2 * (20_000 + 128))
  // c goes at the tail; d, past the padding, is forgotten where it is: only padding and a
  // forgotten record are left, and the next one still finds room.
  t.equal(ended.get(c.id, TTL), undefined)
  t.equal(ended.get(d.id, TTL), undefined)
  t.equal(ended.size, 0)
  const e = sized(40_000)
  ended.add(e, TTL)
  t.equal(readBack(ended, e.id, TTL)?.userId, e.userId)
  t.equal(ended.bytes, 40_000 + 128)
  ended.clear()
  t.equal(ended.size, 0)
  t.equal(ended.bytes, 0)
  t.equal(ended.get(e.id, TTL), undefined)
})
