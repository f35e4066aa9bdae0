/**
 * A count of slots with no tenants (the gzip budget: CPU spent compressing is this instance's
 * own). Pure. `tryTake` hands back the slot's release, which frees it once however often it runs.
 */
export class SlotBudget {
  readonly max: number
  #taken = 0

  constructor (max: number) {
    this.max = max
  }

  tryTake (): (() => void) | null {
    if (this.#taken >= this.max) return null
    this.#taken++
    let released = false
    return () => {
      if (released) return
      released = true
      this.#taken--
    }
  }
}
