import { frameEvent } from '../sse/frame.js'

export interface LoggedEvent {
  id: number
  /** The event as framed on the wire, `id:` line included, so replay sends the same bytes. */
  frame: string
}

export interface ReplayLimits {
  maxEvents: number
  maxBytes: number
}

/** What an event holds beside its characters (record, slot, string header), measured at about 75 bytes. */
const EVENT_OVERHEAD = 80
const cost = (frame: string): number => frame.length + EVENT_OVERHEAD

/**
 * One stream's framed events, numbered from 1, bounded by count and bytes (oldest dropped).
 * Pure: no I/O, no timers. Dropping advances a head index instead of shifting the array, so
 * appending stays O(1) on long streams (and clears the slot, so the event is freed at once).
 */
export class ReplayLog {
  readonly #limits: ReplayLimits
  /** Written before each event's number in its `id:` line (the stream's id, see event-id.ts). */
  readonly #idPrefix: string
  /** Dropped events' slots are cleared, so the array holds only what the bounds allow. */
  #events: Array<LoggedEvent | undefined> = []
  #head = 0
  #bytes = 0
  #totalBytes = 0
  #nextId = 1
  #ended = false

  constructor (limits: ReplayLimits, idPrefix = '') {
    this.#limits = limits
    this.#idPrefix = idPrefix
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

  append (data: string): LoggedEvent {
    const id = this.#nextId++
    const frame = frameEvent(data, { id: this.#idPrefix + String(id) })
    // Built by concatenation, a frame is a tree of string pieces: ~290 bytes of heap for a
    // 100-character event. Reading a character flattens it in place (~170 bytes).
    frame.charCodeAt(0)
    const event = { id, frame }
    this.#events.push(event)
    this.#bytes += cost(frame)
    this.#totalBytes += frame.length
    // The newest event always stays, however large.
    while (this.#events.length - this.#head > 1 &&
      (this.#events.length - this.#head > this.#limits.maxEvents || this.#bytes > this.#limits.maxBytes)) {
      this.#bytes -= cost((this.#events[this.#head] as LoggedEvent).frame)
      this.#events[this.#head++] = undefined
    }
    if (this.#head > 1024 && this.#head * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#head)
      this.#head = 0
    }
    return event
  }

  /** Events after `cursor`, or null when the ones right after it were already dropped. */
  after (cursor: number): LoggedEvent[] | null {
    const first = this.#events[this.#head]?.id ?? this.#nextId
    if (cursor >= this.lastId) return []
    if (cursor < first - 1) return null
    // Slots from the head on are all set: only dropped ones (before the head) are cleared.
    return this.#events.slice(this.#head + cursor - first + 1) as LoggedEvent[]
  }

  end (): void {
    this.#ended = true
  }
}
