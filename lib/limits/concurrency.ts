/**
 * Counts concurrent streams per tenant and in total. Pure: the caller decides what a
 * rejection means (HTTP 429). A lease releases its slot exactly once, however often
 * release() is called, so every exit path may call it without bookkeeping.
 */
export interface Lease {
  readonly tenant: string
  /** Names the lease where others can see it (in Redis, whose lease set says whether its holder lives). */
  readonly id?: string
  release: () => void
}

export type AcquireResult =
  | { ok: true, lease: Lease }
  | { ok: false, scope: 'tenant' | 'global', limit: number }

export interface ConcurrencyLimits {
  maxPerTenant: number
  maxTotal: number
}

/** What gives leases out, and frees the slot of one released. */
export interface LeaseOwner {
  free: (lease: Lease) => void
}

/** A lease whose `release` has `owner` free its slot the first time it is called and never again. */
export function leaseOnce (tenant: string, id: string | undefined, owner: LeaseOwner): Lease {
  return new OnceLease(tenant, id, owner)
}

/** An object that names its owner, not a closure over a flag and a slot: every open stream holds one. */
class OnceLease implements Lease {
  readonly tenant: string
  readonly id: string | undefined
  #owner: LeaseOwner | null

  constructor (tenant: string, id: string | undefined, owner: LeaseOwner) {
    this.tenant = tenant
    this.id = id
    this.#owner = owner
  }

  release (): void {
    const owner = this.#owner
    if (owner === null) return
    this.#owner = null
    owner.free(this)
  }
}

export class ConcurrencyLimiter implements LeaseOwner {
  readonly limits: ConcurrencyLimits
  #perTenant = new Map<string, number>()
  #total = 0

  constructor (limits: ConcurrencyLimits) {
    this.limits = limits
  }

  get total (): number {
    return this.#total
  }

  active (tenant: string): number {
    return this.#perTenant.get(tenant) ?? 0
  }

  tryAcquire (tenant: string): AcquireResult {
    if (this.#total >= this.limits.maxTotal) return { ok: false, scope: 'global', limit: this.limits.maxTotal }
    const current = this.active(tenant)
    if (current >= this.limits.maxPerTenant) return { ok: false, scope: 'tenant', limit: this.limits.maxPerTenant }
    this.#perTenant.set(tenant, current + 1)
    this.#total++
    return { ok: true, lease: leaseOnce(tenant, undefined, this) }
  }

  /** Called once per lease, by the lease (see `leaseOnce`). */
  free ({ tenant }: Lease): void {
    const left = this.active(tenant) - 1
    if (left === 0) this.#perTenant.delete(tenant)
    else this.#perTenant.set(tenant, left)
    this.#total--
  }
}
