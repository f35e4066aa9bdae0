/** A deadline in a `DeadlineHeap`: its time, and its place in the heap (-1 when not in one). */
export class Deadline<T> {
  at = 0
  slot = -1
  readonly owner: T

  constructor (owner: T) {
    this.owner = owner
  }

  get scheduled (): boolean {
    return this.slot !== -1
  }
}

/**
 * Deadlines ordered by time in a binary heap that knows each entry's slot, so one is moved or
 * taken out in O(log n) without a search. Pure: no clock, no timers.
 */
export class DeadlineHeap<T> {
  readonly #heap: Array<Deadline<T>> = []

  get size (): number {
    return this.#heap.length
  }

  /** The earliest deadline, or undefined when there is none. */
  peek (): Deadline<T> | undefined {
    return this.#heap[0]
  }

  /** Puts `d` at `at`, whether or not it was in the heap. */
  set (d: Deadline<T>, at: number): void {
    const earlier = at < d.at
    d.at = at
    if (d.slot === -1) {
      d.slot = this.#heap.length
      this.#heap.push(d)
      this.#up(d.slot)
    } else if (earlier) this.#up(d.slot)
    else this.#down(d.slot)
  }

  /** Takes `d` out; nothing when it is not in the heap. */
  delete (d: Deadline<T>): void {
    const slot = d.slot
    if (slot === -1) return
    d.slot = -1
    const last = this.#heap.pop() as Deadline<T>
    if (last === d) return
    this.#place(last, slot)
    this.#up(slot)
    this.#down(last.slot)
  }

  /** Takes out and returns the earliest deadline if it is at or before `now`. */
  popDue (now: number): Deadline<T> | undefined {
    const first = this.#heap[0]
    if (first === undefined || first.at > now) return undefined
    this.delete(first)
    return first
  }

  #place (d: Deadline<T>, slot: number): void {
    this.#heap[slot] = d
    d.slot = slot
  }

  #up (slot: number): void {
    const heap = this.#heap
    const d = heap[slot] as Deadline<T>
    while (slot > 0) {
      const parent = (slot - 1) >> 1
      const above = heap[parent] as Deadline<T>
      if (above.at <= d.at) break
      this.#place(above, slot)
      slot = parent
    }
    this.#place(d, slot)
  }

  #down (slot: number): void {
    const heap = this.#heap
    const d = heap[slot] as Deadline<T>
    const n = heap.length
    for (;;) {
      let child = 2 * slot + 1
      if (child >= n) break
      const right = child + 1
      if (right < n && (heap[right] as Deadline<T>).at < (heap[child] as Deadline<T>).at) child = right
      const below = heap[child] as Deadline<T>
      if (below.at >= d.at) break
      this.#place(below, slot)
      slot = child
    }
    this.#place(d, slot)
  }
}
