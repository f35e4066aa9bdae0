import t from 'tap'
import { StreamRun } from '../lib/stream/run.js'
import { ConcurrencyLimiter } from '../lib/limits/concurrency.js'
import type { StreamOutcome } from '../lib/stream/outcomes.js'
import { timerCount } from './helpers/settle.js'

t.test('release frees slot, timers and signal once, however often it is called', async (t) => {
  const limiter = new ConcurrencyLimiter({ maxPerTenant: 1, maxTotal: 1 })
  const acquired = limiter.tryAcquire('o')
  if (!acquired.ok) throw new Error('slot expected')
  const ends: StreamOutcome[] = []
  const before = timerCount()
  const run = new StreamRun({
    orgId: 'o',
    lease: acquired.lease,
    timeouts: { firstTokenMs: 60_000, idleMs: 60_000, maxDurationMs: 60_000 },
    onEnd: (_run, outcome) => ends.push(outcome)
  })
  t.equal(timerCount(), before + 1, 'one timer armed, for the nearest of the first-token and total bounds')
  t.equal(limiter.total, 1)
  run.release('client_gone')
  run.release('done')
  run.release('timeout')
  t.same(ends, ['client_gone'], 'onEnd once, with the first outcome')
  t.equal(limiter.total, 0)
  t.equal(timerCount(), before, 'timers cleared')
  t.ok(run.signal.aborted, 'the upstream signal is aborted on release')
  t.equal(run.bufferedBytes, 0, 'no sink, nothing buffered')
})
