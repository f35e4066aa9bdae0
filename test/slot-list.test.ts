import t from 'tap'
import { SlotList } from '../lib/slot-list.js'

const item = (name: string): { name: string, listSlot: number } => ({ name, listSlot: -1 })

t.test('adds once, takes out in O(1) with the last item moving into the freed slot', async (t) => {
  const list = new SlotList<{ name: string, listSlot: number }>()
  const [a, b, c] = [item('a'), item('b'), item('c')]
  list.add(a)
  list.add(b)
  list.add(c)
  list.add(b)
  t.equal(list.size, 3, 'adding an item twice keeps it once')
  t.equal(list.delete(a), true)
  t.equal(a.listSlot, -1)
  t.equal(c.listSlot, 0, 'the last item took the freed slot')
  t.equal(list.delete(a), false, 'an item not in the list')
  t.same([...list].map((i) => i.name).sort(), ['b', 'c'])
  t.equal(list.delete(b), true, 'the last item goes without a move')
  t.same([...list].map((i) => i.name), ['c'])
})

t.test('a visit may take out the item it visits, or several: every item left is visited once', async (t) => {
  const list = new SlotList<{ name: string, listSlot: number }>()
  const items = ['a', 'b', 'c', 'd', 'e'].map(item)
  for (const i of items) list.add(i)
  const visited: string[] = []
  for (const i of list) {
    visited.push(i.name)
    list.delete(i)
  }
  t.same(visited, ['e', 'd', 'c', 'b', 'a'])
  t.equal(list.size, 0)
  for (const i of items) list.add(i)
  const seen: string[] = []
  for (const i of list) {
    seen.push(i.name)
    // The first visit (e) takes out itself and the two before it.
    if (i.name === 'e') for (const gone of items.slice(2)) list.delete(gone)
  }
  t.same(seen, ['e', 'b', 'a'])
})
