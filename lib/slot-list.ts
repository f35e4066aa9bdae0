/** An object a `SlotList` can hold: it carries its place in the list, -1 while in none. */
export interface Slotted {
  listSlot: number
}

/**
 * The objects of one kind that are open right now (streams, their writers), added and taken out
 * in O(1) through the slot each carries, in an array instead of a Set. Why not a Set: its hash
 * table is rebuilt as entries come and go, and once a table was promoted to the old generation
 * (a full GC promotes what is alive) V8 allocates its successors there too; every table left
 * behind then holds the young objects it pointed to until the next full GC, and under load each
 * in-flight stream's objects were promoted with them. Under scenario 1's load after one forced
 * full GC, `--trace-gc-nvp`: 4.6 KB promoted per stream with the keep-alive and run Sets, 1.3 KB
 * without them. An array's store is replaced only as it grows. Pure.
 */
export class SlotList<T extends Slotted> {
  readonly #items: T[] = []

  get size (): number {
    return this.#items.length
  }

  /** Adds `item` unless it is in the list already. */
  add (item: T): void {
    if (item.listSlot !== -1) return
    item.listSlot = this.#items.length
    this.#items.push(item)
  }

  /** Takes `item` out (the last item takes its slot); false when it was not in the list. */
  delete (item: T): boolean {
    const slot = item.listSlot
    if (slot === -1) return false
    item.listSlot = -1
    const last = this.#items.pop() as T
    if (last !== item) {
      this.#items[slot] = last
      last.listSlot = slot
    }
    return true
  }

  /** From the last item to the first, so a visit may take out the item it visits (the last one, visited already, takes its slot). */
  * [Symbol.iterator] (): Iterator<T> {
    const items = this.#items
    for (let i = items.length - 1; i >= 0; i--) {
      if (i < items.length) yield items[i] as T
    }
  }
}
