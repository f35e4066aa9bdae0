import t from 'tap'
import { uuidV7 } from '../lib/random.js'

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

t.test('record ids are UUID version 7: the RFC 9562 layout, the creation time in front, unique', async (t) => {
  const before = Date.now()
  const ids = Array.from({ length: 5000 }, () => uuidV7())
  const after = Date.now()
  for (const id of ids.slice(0, 50)) t.match(id, V7)
  t.equal(ids.filter((id) => !V7.test(id)).length, 0, 'every one has version 7 and the RFC variant')
  t.equal(new Set(ids).size, ids.length, 'no two alike (74 random bits each, more than one pool refill)')
  const ms = (id: string): number => parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
  t.ok(ids.every((id) => ms(id) >= before && ms(id) <= after), 'the first 48 bits are the Unix milliseconds it was made')
  const later = uuidV7()
  await new Promise((resolve) => setTimeout(resolve, 5))
  t.ok(uuidV7() > later, 'an id made a few milliseconds later sorts after (time order, as text too)')
})
