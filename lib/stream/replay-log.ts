import { contentLineOf, isEventLine, keptLineOf } from '../protocol/chunk.js'
import { frameNumbered, idLineOf, type LoggedEvent } from '../sse/frame.js'
import { SlotList, type Slotted } from '../slot-list.js'

export interface ReplayLimits {
  maxEvents: number
  maxBytes: number
}

/** What an event holds beside its characters (its array slot, its string's header), measured at about 33 bytes. */
const EVENT_OVERHEAD = 40
const cost = (entry: string): number => entry.length + EVENT_OVERHEAD

/** What an ended log's entries array becomes: it takes no more events. */
const NO_ENTRIES: Array<string | undefined> = Object.freeze([]) as unknown as Array<string | undefined>

/**
 * One replay budget for every live stream's log together: live logs are bounded one by one
 * (`ReplayLimits`), but 10,000 long live streams would still hold 10,000 times that. Past
 * `maxBytes`, the longest logs give up their oldest events first (down to 90 % of the budget, so
 * one reclaim serves many appends); a resume whose cursor fell out gets 410 as ever. Pure.
 */
export class ReplayBudget {
  readonly maxBytes: number
  /** In a SlotList, not a Set: every stream's log joins and leaves (see slot-list.ts). */
  readonly #logs = new SlotList<ReplayLog>()
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
      // Over the budget, so some live log holds bytes: the list is not empty.
      // Of logs equally long, the one in the lowest slot (visited last): with none gone, the first to join.
      let top: ReplayLog | undefined
      for (const log of this.#logs) if (top === undefined || log.bytes >= top.bytes) top = log
      const longest = top as ReplayLog
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
 * The frames of the events after `cursor` of a log that keeps events `first` to `last`: none
 * when nothing came after it, null when the ones right after it are no longer kept.
 * `entries(from)` gives the kept entries from the `from`th on.
 */
export function replayAfter (idLine: string, first: number, last: number, cursor: number,
  entries: (from: number) => ReadonlyArray<string | undefined>): LoggedEvent[] | null {
  if (cursor >= last) return []
  if (cursor < first - 1) return null
  return entries(cursor + 1 - first).map((entry, i) => {
    const id = cursor + 1 + i
    return { id, frame: frameNumbered(idLine, id, keptLineOf(entry as string)) }
  })
}

/**
 * One stream's events, numbered from 1, bounded by count and bytes (oldest dropped), framed
 * again for a replay. Pure: no I/O, no timers. Dropping advances a head index instead of
 * shifting the array, so appending stays O(1) on long streams (and clears the slot, so the event
 * is freed at once).
 *
 * A content event is kept as its text's JSON string, not its frame: the frame is written and
 * dropped young, and an ended stream, kept for resumes for minutes, holds about a quarter of the
 * characters (a 20-token reply: some 1.2 KB instead of 4.3), joined into one string (see `end`)
 * and then stored off the heap (EndedStreams).
 */
export class ReplayLog implements Slotted {
  /** Its place in the live budget's list (see ReplayBudget). */
  listSlot = -1
  readonly #limits: ReplayLimits
  /** Written before each event's number in its `id:` line (the stream's id, see event-id.ts). */
  readonly #idLine: string
  readonly #budget: ReplayBudget | undefined
  /**
   * The events, without a record each (some 40 bytes, for as long as the stream is resumable):
   * a content event's text as a JSON string (it begins with `"`), any other event's JSON line
   * (it begins with `{`; see `keptLineOf`), as the shared logs keep them. The kept ones, from
   * the head, are the newest, so their ids follow from `#nextId`. Dropped events' slots are
   * cleared, so the array holds only what the bounds allow.
   */
  #entries: Array<string | undefined> = []
  #head = 0
  #bytes = 0
  #totalBytes = 0
  #nextId = 1
  /**
   * Once ended, the kept entries joined by LF, and how many they are: what a stream kept for
   * resumes stores (see EndedStreams), and one string where the array of entries was one object
   * per event. No entry holds a raw line break (JSON text, see `keptLineOf`).
   */
  #endedLines: string | null = null
  #endedCount = 0

  constructor (limits: ReplayLimits, idPrefix = '', budget?: ReplayBudget) {
    this.#limits = limits
    this.#idLine = idLineOf(idPrefix)
    this.#budget = budget
    budget?.join(this)
  }

  /** How many events are kept: the slots from the head on. */
  get #kept (): number {
    return this.#endedLines === null ? this.#entries.length - this.#head : this.#endedCount
  }

  get lastId (): number {
    return this.#nextId - 1
  }

  get ended (): boolean {
    return this.#endedLines !== null
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
    if (!isEventLine(line)) throw new TypeError('A replayed event is a JSON object')
    return this.#keep(line, line)
  }

  /** `append` for a content event, which is kept as its text's JSON string alone (`contentLiteral`). */
  appendContent (literal: string): string {
    return this.#keep(literal, contentLineOf(literal))
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
    // The oldest kept event's id is the next one's while the log is empty. Slots from the head on
    // are all set: only dropped ones (before the head) are cleared.
    return replayAfter(this.#idLine, this.#nextId - this.#kept, this.lastId, cursor, (from) =>
      this.#endedLines === null ? this.#entries.slice(this.#head + from) : this.#endedLines.split('\n').slice(from))
  }

  /** How many events are kept. */
  get count (): number {
    return this.#kept
  }

  /** An ended log's events joined by LF, as a stream kept for resumes stores them (see EndedStreams). */
  get endedLines (): string {
    return this.#endedLines as string
  }

  /** Nothing follows: what is kept is kept for resumes only, as one string. */
  end (): void {
    if (this.#endedLines !== null) return
    this.#budget?.leave(this)
    this.#endedCount = this.#kept
    this.#endedLines = (this.#head === 0 ? this.#entries : this.#entries.slice(this.#head)).join('\n')
    // What it holds now: one string, one overhead (a resume splits it again, rarely).
    this.#bytes = cost(this.#endedLines)
    this.#entries = NO_ENTRIES
    this.#head = 0
  }
}
