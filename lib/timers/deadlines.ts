import { Deadline, DeadlineHeap } from './deadline-heap.js'

export type { Deadline }

/** What a deadline is for: told once when it is reached (it may set its deadline again then); it must not throw, as a timer's callback must not. */
export interface DeadlineOwner {
  deadlineReached: () => void
}

/**
 * Many deadlines on one Node timer, armed for the earliest. A Timeout is some 290 bytes with its
 * arguments array and boxed numbers, and an idle stream had two (its bounds, the built-in model's
 * next token); here a deadline is one small object in a heap. Times are `performance.now()`.
 */
export class Deadlines {
  readonly #heap = new DeadlineHeap<DeadlineOwner>()
  #timer: NodeJS.Timeout | null = null
  /** When the timer is armed for (Infinity when it is not). */
  #armedFor = Infinity
  /** Telling owners: what they set is armed for once, after. */
  #firing = false

  /** A deadline for `owner`, not set yet. */
  for (owner: DeadlineOwner): Deadline<DeadlineOwner> {
    return new Deadline(owner)
  }

  /** Sets `d` to `at` (moving it if it was set). */
  set (d: Deadline<DeadlineOwner>, at: number): void {
    this.#heap.set(d, at)
    if (at < this.#armedFor && !this.#firing) this.#arm(at)
  }

  /** Takes `d` out. The timer stays armed while other deadlines are left (firing early, it re-arms). */
  clear (d: Deadline<DeadlineOwner>): void {
    this.#heap.delete(d)
    if (this.#heap.size === 0 && this.#timer !== null) {
      clearTimeout(this.#timer)
      this.#timer = null
      this.#armedFor = Infinity
    }
  }

  #arm (at: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#armedFor = at
    this.#timer = setTimeout(Deadlines.#fired, Math.max(0, Math.ceil(at - performance.now())), this)
  }

  static #fired (deadlines: Deadlines): void {
    deadlines.#fire()
  }

  /** Takes every deadline due now before telling any owner, so one that sets its deadline again waits for the next firing. */
  #fire (): void {
    this.#timer = null
    this.#armedFor = Infinity
    const now = performance.now()
    const due: DeadlineOwner[] = []
    for (let d = this.#heap.popDue(now); d !== undefined; d = this.#heap.popDue(now)) due.push(d.owner)
    this.#firing = true
    for (const owner of due) owner.deadlineReached()
    this.#firing = false
    const next = this.#heap.peek()
    if (next !== undefined) this.#arm(next.at)
  }
}

/** The process's deadlines, as Node's timers are the process's. */
export const deadlines = new Deadlines()
