import { SlotList, type Slotted } from '../slot-list.js'

/** A stream that can be sent a keep-alive comment; false when it was skipped (its buffer is full). */
export interface KeepAliveTarget extends Slotted {
  keepAlive: () => boolean
}

/**
 * One interval for every open stream instead of one each: 10,000 idle streams cost one timer
 * and one pass over a list per interval, not 10,000 timers. A stream gets its first comment
 * within one interval of opening, then one per interval. The timer runs only while a stream is open.
 */
export class KeepAliveTicker {
  readonly #targets = new SlotList<KeepAliveTarget>()
  readonly #intervalMs: number
  readonly #onTick: (sent: number) => void
  #timer: NodeJS.Timeout | undefined

  constructor (intervalMs: number, onTick: (sent: number) => void = () => {}) {
    this.#intervalMs = intervalMs
    this.#onTick = onTick
  }

  get size (): number {
    return this.#targets.size
  }

  /** Whether the interval is armed (it is unref'd, so process resource lists do not show it). */
  get running (): boolean {
    return this.#timer !== undefined
  }

  add (target: KeepAliveTarget): void {
    this.#targets.add(target)
    if (this.#timer !== undefined) return
    this.#timer = setInterval(this.#tick, this.#intervalMs)
    this.#timer.unref()
  }

  delete (target: KeepAliveTarget): void {
    this.#targets.delete(target)
    if (this.#targets.size > 0 || this.#timer === undefined) return
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  readonly #tick = (): void => {
    let sent = 0
    for (const target of this.#targets) if (target.keepAlive()) sent++
    this.#onTick(sent)
  }
}
