import { serializeContent } from '../protocol/chunk.js'
import { frameNumbered, idLineOf, type LoggedEvent } from '../sse/frame.js'

export interface ReplayLimits {
  maxEvents: number
  maxBytes: number
}

/** What an event holds beside its characters (its array slot, its string's header), measured at about 33 bytes. */
const EVENT_OVERHEAD = 40
const cost = (entry: string): number => entry.length + EVENT_OVERHEAD

/** Every event's line is a JSON object, so it begins with `{`. */
const BRACE = 0x7b

/** The data line an entry stands for: a line is kept as itself, a content event as its text. */
const lineOf = (entry: string): string => entry.charCodeAt(0) === BRACE ? entry : serializeContent(entry)

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
 * One stream's events, numbered from 1, bounded by count and bytes (oldest dropped), framed
 * again for a replay. Pure: no I/O, no timers. Dropping advances a head index instead of
 * shifting the array, so appending stays O(1) on long streams (and clears the slot, so the event
 * is freed at once).
 *
 * A content event is kept as its text, not its frame: the frame is written and dropped young,
 * and an ended stream, kept for resumes for minutes, holds about a quarter of the characters (a
 * 20-token reply: some 1.2 KB of strings instead of 4.3). Memory that outlives the young
 * generation is what a turn pays for most, in GC and in fresh pages (bench/PROFILE.md).
 */
export class ReplayLog {
  readonly #limits: ReplayLimits
  /** Written before each event's number in its `id:` line (the stream's id, see event-id.ts). */
  readonly #idLine: string
  readonly #budget: ReplayBudget | undefined
  /**
   * The events, without a record each (some 40 bytes, for as long as the stream is resumable):
   * a content event's text, any other event's JSON line (see `lineOf`; text that begins with `{`
   * is kept as its line). The kept ones, from the head, are the newest, so their ids follow
   * from `#nextId`. Dropped events' slots are cleared, so the array holds only what the bounds allow.
   */
  #entries: Array<string | undefined> = []
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
    return this.#entries.length - this.#head
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

  /** Frames and keeps the next event (its id is `lastId` now); `line` is its data, one line of JSON: an object. */
  append (line: string): string {
    if (line.charCodeAt(0) !== BRACE) throw new TypeError('A replayed event is a JSON object')
    return this.#keep(line, line)
  }

  /** `append` for a content event, which is kept as `text` alone. */
  appendContent (text: string): string {
    const line = serializeContent(text)
    return this.#keep(text.charCodeAt(0) === BRACE ? line : text, line)
  }

  #keep (entry: string, line: string): string {
    const frame = frameNumbered(this.#idLine, this.#nextId++, line)
    this.#entries.push(entry)
    const bytes = cost(entry)
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
    const bytes = cost(this.#entries[this.#head] as string)
    this.#bytes -= bytes
    this.#budget?.charge(-bytes)
    this.#entries[this.#head++] = undefined
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head)
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
    return this.#entries.slice(this.#head + cursor + 1 - first).map((entry, i) => {
      const id = cursor + 1 + i
      return { id, frame: frameNumbered(this.#idLine, id, lineOf(entry as string)) }
    })
  }

  /** Nothing follows: what is kept is kept for resumes only, in an array of its exact size (a push reserves room to grow). */
  end (): void {
    if (this.#ended) return
    this.#ended = true
    this.#budget?.leave(this)
    this.#entries = this.#entries.slice(this.#head)
    this.#head = 0
  }
}
