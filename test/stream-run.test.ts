import t from 'tap'
import { StreamRun } from '../lib/stream/run.js'
import { ConcurrencyLimiter } from '../lib/limits/concurrency.js'
import type { StreamOutcome } from '../lib/stream/outcomes.js'
import { timerCount, within } from './helpers/settle.js'

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

t.test('an idle bound later than the first-token one still holds when the first token did not re-arm the timer', async (t) => {
  const limiter = new ConcurrencyLimiter({ maxPerTenant: 1, maxTotal: 1 })
  const acquired = limiter.tryAcquire('o')
  if (!acquired.ok) throw new Error('slot expected')
  const run = new StreamRun({
    orgId: 'o',
    lease: acquired.lease,
    timeouts: { firstTokenMs: 50, idleMs: 200, maxDurationMs: 10_000 },
    onEnd: () => {}
  })
  t.teardown(() => { run.release('done') })
  const tokenAt = performance.now()
  run.token()
  const aborted = new Promise<unknown>((resolve) => run.signal.addEventListener('abort', () => { resolve(run.signal.reason) }))
  const reason = await within(aborted, 2000, 'the idle timeout')
  const after = performance.now() - tokenAt
  t.match(reason, { name: 'StreamTimeoutError', kind: 'idle', ms: 200 }, 'the idle bound ended it, not the first-token one')
  t.ok(after >= 199, `not before the idle bound (${after.toFixed(0)} ms after the token)`)
})

t.test('many runs share one timer, armed for the nearest bound of them all', async (t) => {
  const limiter = new ConcurrencyLimiter({ maxPerTenant: 100, maxTotal: 100 })
  const before = timerCount()
  const aborted: string[] = []
  const runs = [500, 60_000, 50, 30_000].map((firstTokenMs, i) => {
    const acquired = limiter.tryAcquire('o')
    if (!acquired.ok) throw new Error('slot expected')
    const run = new StreamRun({ orgId: 'o', lease: acquired.lease, timeouts: { firstTokenMs, idleMs: 60_000, maxDurationMs: 120_000 }, onEnd: () => {} })
    run.signal.addEventListener('abort', () => { aborted.push(`run ${i}`) })
    return run
  })
  t.teardown(() => { for (const run of runs) run.release('done') })
  t.equal(timerCount(), before + 1, 'one timer for four runs')
  await within(new Promise<void>((resolve) => { const poll = setInterval(() => { if (aborted.length === 2) { clearInterval(poll); resolve() } }, 10) }), 5000, 'the two short first-token bounds')
  t.same(aborted, ['run 2', 'run 0'], 'the nearest first, each at its own bound')
  runs[2]?.release('first_token')
  runs[0]?.release('first_token')
  t.equal(timerCount(), before + 1, 'still one timer for the two left')
  runs[1]?.release('done')
  runs[3]?.release('done')
  t.equal(timerCount(), before, 'none once every run is released')
})
