import t from 'tap'
import { ConcurrencyLimiter, type Lease } from '../lib/limits/concurrency.js'

t.test('per-tenant limit, global limit, release exactly once', async (t) => {
  const limiter = new ConcurrencyLimiter({ maxPerTenant: 2, maxTotal: 3 })
  const leases: Lease[] = []
  const take = (tenant: string): Lease => {
    const r = limiter.tryAcquire(tenant)
    if (!r.ok) throw new Error(`refused: ${r.scope}`)
    leases.push(r.lease)
    return r.lease
  }
  const a1 = take('a')
  take('a')
  t.same(limiter.tryAcquire('a'), { ok: false, scope: 'tenant', limit: 2 })
  take('b')
  t.same(limiter.tryAcquire('c'), { ok: false, scope: 'global', limit: 3 })
  t.equal(limiter.total, 3)
  t.equal(limiter.active('a'), 2)

  a1.release()
  a1.release()
  a1.release()
  t.equal(limiter.active('a'), 1, 'a repeated release frees one slot only')
  t.equal(limiter.total, 2)
  take('c')
  for (const l of leases) l.release()
  t.equal(limiter.total, 0)
  t.equal(limiter.active('a'), 0)
  t.equal(limiter.active('never-seen'), 0)
})
