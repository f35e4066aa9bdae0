import { frameNumbered, idLineOf, type LoggedEvent } from '../sse/frame.js'

export interface ReplayLimits {
  maxEvents: number
  maxBytes: number
}

/** What an event holds beside its characters (its array slot, its string's header), measured at about 33 bytes. */
const EVENT_OVERHEAD = 40
const cost = (frame: string): number => frame.length + EVENT_OVERHEAD

/**
 * One replay budget for every live stream's log together: live logs are bounded one by one
 * (`ReplayLimits`), but 10,000 long live streams would still hold 10,000 times that. Past
 * `maxBytes`, the longest logs give up their oldest events first (down to 90 % of the budget, so
 * one reclaim serves many appends); a resume whose cursor fell out gets 410 as ever. Pure.
 */
export class ReplayBudget {
  readonly maxBytes: number
  readonly #logs = new Set<ReplayLog>()
  #bytes = 0

  constructor (maxBytes: number) {
    this.maxBytes = maxBytes
  }

  /** What the live logs hold together. */
  get bytes (): number {
    return this.#bytes
  }

  join (log: ReplayLog): void {
    this.#logs.add(log)
  }

  /** The log ended (or its stream went): what it holds is no longer live. */
  leave (log: ReplayLog): void {
    if (this.#logs.delete(log)) this.#bytes -= log.bytes
  }

  charge (bytes: number): void {
    this.#bytes += bytes
  }

  reclaim (): void {
    if (this.#bytes <= this.maxBytes) return
    const target = this.maxBytes * 0.9
    while (this.#bytes > target) {
      // Over the budget, so some live log holds bytes: the set is not empty.
      let longest = this.#logs.values().next().value as ReplayLog
      for (const log of this.#logs) if (log.bytes > longest.bytes) longest = log
      let next = 0
      for (const log of this.#logs) if (log !== longest && log.bytes > next) next = log.bytes
      // Down to the next longest (or just to the target), so the longest logs shrink together;
      // logs of equal length give up a tenth each turn.
      const floor = next < longest.bytes ? next : next * 0.9
      if (!longest.dropOldestTo(Math.max(floor, longest.bytes - (this.#bytes - target)))) return
    }
  }
}

/**
 * One stream's framed events, numbered from 1, bounded by count and bytes (oldest dropped).
 * Pure: no I/O, no timers. Dropping advances a head index instead of shifting the array, so
 * appending stays O(1) on long streams (and clears the slot, so the event is freed at once).
 */
export class ReplayLog {
  readonly #limits: ReplayLimits
  /** Written before each event's number in its `id:` line (the stream's id, see event-id.ts). */
  readonly #idLine: string
  readonly #budget: ReplayBudget | undefined
  /**
   * The frames, without a record each (some 40 bytes, for as long as the stream is resumable):
   * the kept ones, from the head, are the newest, so their ids follow from `#nextId`. Dropped
   * events' slots are cleared, so the array holds only what the bounds allow.
   */
  #frames: Array<string | undefined> = []
  #head = 0
  #bytes = 0
  #totalBytes = 0
  #nextId = 1
  #ended = false

  constructor (limits: ReplayLimits, idPrefix = '', budget?: ReplayBudget) {
    this.#limits = limits
    this.#idLine = idLineOf(idPrefix)
    this.#budget = budget
    budget?.join(this)
  }

  /** How many events are kept: the slots from the head on. */
  get #kept (): number {
    return this.#frames.length - this.#head
  }

  get lastId (): number {
    return this.#nextId - 1
  }

  get ended (): boolean {
    return this.#ended
  }

  /** What the held events cost in memory: their characters plus per-event bookkeeping; bounded by `maxBytes`. */
  get bytes (): number {
    return this.#bytes
  }

  /** Every byte ever appended, dropped or not. */
  get totalBytes (): number {
    return this.#totalBytes
  }

  /** Frames and keeps the next event (its id is `lastId` now); `line` is its data, one line of JSON (see `frameNumbered`). */
  append (line: string): string {
    const id = this.#nextId++
    const frame = frameNumbered(this.#idLine, id, line)
    // Built by concatenation, a frame is a tree of string pieces: ~290 bytes of heap for a
    // 100-character event. Reading a character flattens it in place (~170 bytes).
    frame.charCodeAt(0)
    this.#frames.push(frame)
    const bytes = cost(frame)
    this.#bytes += bytes
    this.#budget?.charge(bytes)
    this.#totalBytes += frame.length
    while (this.#kept > this.#limits.maxEvents || this.#bytes > this.#limits.maxBytes) {
      if (!this.#dropOldest()) break
    }
    this.#budget?.reclaim()
    return frame
  }

  /** Drops the oldest event; false when only the newest is left (it always stays, however large). */
  #dropOldest (): boolean {
    if (this.#kept <= 1) return false
    const bytes = cost(this.#frames[this.#head] as string)
    this.#bytes -= bytes
    this.#budget?.charge(-bytes)
    this.#frames[this.#head++] = undefined
    if (this.#head > 1024 && this.#head * 2 > this.#frames.length) {
      this.#frames = this.#frames.slice(this.#head)
      this.#head = 0
    }
    return true
  }

  /** Drops oldest events until the log holds at most `bytes` (or one event); false when it could drop none. */
  dropOldestTo (bytes: number): boolean {
    let dropped = false
    while (this.#bytes > bytes && this.#dropOldest()) dropped = true
    return dropped
  }

  /** Events after `cursor`, or null when the ones right after it were already dropped. */
  after (cursor: number): LoggedEvent[] | null {
    // The oldest kept event's id (the next one's while the log is empty).
    const first = this.#nextId - this.#kept
    if (cursor >= this.lastId) return []
    if (cursor < first - 1) return null
    // Slots from the head on are all set: only dropped ones (before the head) are cleared.
    return this.#frames.slice(this.#head + cursor + 1 - first).map((frame, i) => ({ id: cursor + 1 + i, frame: frame as string }))
  }

  end (): void {
    this.#ended = true
    this.#budget?.leave(this)
  }
}
