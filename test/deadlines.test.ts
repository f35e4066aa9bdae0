import t from 'tap'
import fc from 'fast-check'
import { Deadline, DeadlineHeap } from '../lib/timers/deadline-heap.js'
import { Deadlines, type DeadlineOwner } from '../lib/timers/deadlines.js'
import { runModuleScript } from './helpers/module-script.js'

t.test('the heap gives deadlines back in time order, however they were set, moved and deleted', async (t) => {
  type Op = { kind: 'set', id: number, at: number } | { kind: 'delete', id: number } | { kind: 'pop', now: number }
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), id: fc.nat(15), at: fc.integer({ min: 0, max: 100 }) }),
    fc.record({ kind: fc.constant('delete' as const), id: fc.nat(15) }),
    fc.record({ kind: fc.constant('pop' as const), now: fc.integer({ min: 0, max: 100 }) })
  )
  fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
    const heap = new DeadlineHeap<number>()
    const entries = Array.from({ length: 16 }, (_, id) => new Deadline(id))
    // The model: what is set, and when.
    const model = new Map<number, number>()
    for (const o of ops) {
      if (o.kind === 'set') {
        heap.set(entries[o.id] as Deadline<number>, o.at)
        model.set(o.id, o.at)
      } else if (o.kind === 'delete') {
        heap.delete(entries[o.id] as Deadline<number>)
        model.delete(o.id)
      } else {
        const popped = heap.popDue(o.now)
        const earliest = Math.min(...model.values())
        if (earliest > o.now) {
          if (popped !== undefined) return false
        } else {
          // Any of the earliest ones, and only one.
          if (popped === undefined || popped.at !== earliest || model.get(popped.owner) !== earliest) return false
          model.delete(popped.owner)
        }
      }
      if (heap.size !== model.size) return false
      if (heap.peek()?.at !== (model.size === 0 ? undefined : Math.min(...model.values()))) return false
      for (const e of entries) if (e.scheduled !== model.has(e.owner)) return false
    }
    // Drained, they come out in order.
    const out: number[] = []
    for (let d = heap.popDue(Infinity); d !== undefined; d = heap.popDue(Infinity)) out.push(d.at)
    return out.length === model.size && out.every((at, i) => i === 0 || (out[i - 1] as number) <= at)
  }), { numRuns: 500 })
})

/** An owner that records when it was told, and may set itself again. */
function owner (name: string, told: string[], again?: () => void): DeadlineOwner {
  return { deadlineReached: () => { told.push(name); again?.() } }
}

t.test('one timer fires each deadline at its time, in order; a cleared one never, a moved one at its new time', async (t) => {
  const deadlines = new Deadlines()
  const told: string[] = []
  const start = performance.now()
  const at: Record<string, number> = {}
  const mark = (name: string): DeadlineOwner => owner(name, told, () => { at[name] = performance.now() - start })
  const late = deadlines.for(mark('late'))
  const early = deadlines.for(mark('early'))
  const gone = deadlines.for(mark('gone'))
  const moved = deadlines.for(mark('moved'))
  deadlines.set(late, start + 60)
  deadlines.set(early, start + 20)
  deadlines.set(gone, start + 10)
  deadlines.set(moved, start + 5)
  deadlines.set(moved, start + 40)
  deadlines.clear(gone)
  deadlines.clear(gone)
  await new Promise((resolve) => setTimeout(resolve, 120))
  t.same(told, ['early', 'moved', 'late'])
  t.ok((at.early as number) >= 20 && (at.moved as number) >= 40 && (at.late as number) >= 60, `none before its time: ${JSON.stringify(at)}`)
  t.notOk(early.scheduled, 'a fired deadline is no longer set')
})

t.test('an owner may set its deadline again when told; an earlier one set later re-arms the timer', async (t) => {
  const deadlines = new Deadlines()
  const told: string[] = []
  let rounds = 0
  const ticking: { d: ReturnType<Deadlines['for']> | null } = { d: null }
  ticking.d = deadlines.for(owner('tick', told, () => { if (++rounds < 3) deadlines.set(ticking.d as ReturnType<Deadlines['for']>, performance.now() + 5) }))
  const slow = deadlines.for(owner('slow', told))
  deadlines.set(slow, performance.now() + 200)
  deadlines.set(ticking.d, performance.now() + 5)
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(told, ['tick', 'tick', 'tick'], 'three ticks, each set from the last, long before the slow one')
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.same(told, ['tick', 'tick', 'tick', 'slow'])
})

t.test('clearing the last deadline stops the timer, so it does not hold the process open', async (t) => {
  const script = `
    import { Deadlines } from ${JSON.stringify(new URL('../lib/timers/deadlines.ts', import.meta.url).href)}
    const deadlines = new Deadlines()
    const d = deadlines.for({ deadlineReached () { console.log('fired') } })
    deadlines.set(d, performance.now() + 60_000)
    deadlines.clear(d)
    console.log('cleared')
  `
  const { code, stdout } = await runModuleScript(script, [], 20_000)
  t.equal(code, 0, 'exited by itself, long before the cleared deadline')
  t.equal(stdout, 'cleared\n')
})
