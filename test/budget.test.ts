import t from 'tap'
import { SlotBudget } from '../lib/limits/budget.js'

t.test('a SlotBudget hands out at most max slots; a slot is freed once however often its release runs', async (t) => {
  const budget = new SlotBudget(2)
  const a = budget.tryTake()
  const b = budget.tryTake()
  t.ok(a !== null && b !== null, 'two slots')
  t.equal(budget.tryTake(), null, 'none past the budget')
  a?.()
  a?.()
  const c = budget.tryTake()
  t.ok(c !== null, 'the freed slot is taken again')
  t.equal(budget.tryTake(), null, 'a second release of the same slot freed nothing more')
  t.equal(new SlotBudget(0).tryTake(), null, 'a budget of 0 compresses nothing')
})
