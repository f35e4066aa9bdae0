import { EndedStream, type EndedInfo } from './handle.js'

/**
 * What a kept stream costs the heap beside its record in the ring: its id, the index's key, and
 * the index's slot (125 bytes, measured over 20,000 kept streams; rounded up).
 */
const INDEX_OVERHEAD = 128

/** The ring's first size: it doubles as it needs, and goes back to this once nothing is kept. */
const FIRST_CAPACITY = 64 * 1024

// A record, at a multiple of 8 and never across the ring's end (see `#reserve`):
const SIZE = 0 // u32: the record's bytes, header included, a multiple of 8
const STATE = 4 // u32: KEPT, FORGOTTEN or PADDING
const ENDED_AT = 8 // f64: Date.now() when it ended
const LAST_ID = 16 // f64
const COUNT = 24 // u32: events kept
const LINES_BYTES = 28 // u32
const CHARS = 32 // u32 × 5: the lengths of id, resume token, org, user and agent, in UTF-16 code units
const HEADER = 52 // then those five as UTF-16LE, then the lines as UTF-8

const KEPT = 0
const FORGOTTEN = 1
/** The unused end of the ring before a record that did not fit there. */
const PADDING = 2

/** Shared memory, which V8 leaves out of the isolate's external memory (see EndedStreams). */
const newRing = (bytes: number): Buffer => Buffer.from(new SharedArrayBuffer(bytes))

const align8 = (n: number): number => (n + 7) & ~7

/**
 * The streams this process ran that ended and are kept for resumes, for `ttlMs` and within
 * `maxBytes`: one record each in a ring of bytes, found through a Map from id to its record.
 *
 * Why not objects: kept streams are memory that outlives the young generation. As objects (the
 * stream, its sink and log, their strings: some 2 KB a stream) they filled the old generation,
 * and once full collections came, the young collector promoted much of what it found alive,
 * in-flight turns included (mostly through hash tables, see SlotList): under scenario 1's load `--trace-gc-nvp` counted 4.5 KB promoted per
 * stream, against 0.1 with nothing kept (and 4.8 with nothing kept but a full GC forced every
 * 0.7 s). Why shared memory: an ordinary Buffer's bytes count as the isolate's external memory,
 * and V8 schedules full collections on them just the same (4.5 KB); a SharedArrayBuffer's it
 * leaves out (0.2 KB). What bounds them is the budget here; a ring replaced when it grows is
 * freed with its Buffer, at a full collection.
 *
 * Records are kept in the order the streams ended, so the oldest (the first to go, by the budget
 * or the TTL) is at the ring's tail. A lookup that finds an expired one forgets it where it is;
 * the tail skips it later. The five names are stored as UTF-16, which gives any JavaScript string
 * back as it was (a lone surrogate in a user id included); the lines as UTF-8, since they are
 * JSON.stringify output, well-formed. Pure: no I/O, no timers; the caller gives the time.
 */
export class EndedStreams {
  readonly #maxBytes: number
  /** The ring grows to at most the budget, rounded up to a power of two. */
  readonly #maxCapacity: number
  readonly #ttlMs: number
  /** Where each kept record starts in the ring. */
  readonly #index = new Map<string, number>()
  #ring = newRing(FIRST_CAPACITY)
  /**
   * Logical positions: they only grow, and a position's byte is at `position % ring.length`. No
   * record crosses a multiple of the ring's length, so each is one run of bytes, and stays one
   * when the ring doubles.
   */
  #tail = 0
  #head = 0
  #bytes = 0

  constructor (maxBytes: number, ttlMs: number) {
    this.#maxBytes = maxBytes
    this.#ttlMs = ttlMs
    let capacity = FIRST_CAPACITY
    while (capacity < maxBytes) capacity *= 2
    this.#maxCapacity = capacity
  }

  /** What the kept streams cost together, against `maxBytes`. */
  get bytes (): number {
    return this.#bytes
  }

  /** How many streams are kept. */
  get size (): number {
    return this.#index.size
  }

  /**
   * Keeps `info` as ended at `endedAt`; past the budget the oldest kept streams go, this one
   * last (a stream over the budget on its own leaves none kept).
   */
  add (info: EndedInfo, endedAt: number): void {
    const names = info.id + info.resumeToken + info.orgId + info.userId + info.agentId
    const linesBytes = Buffer.byteLength(info.lines)
    const linesAt = HEADER + 2 * names.length
    const size = align8(linesAt + linesBytes)
    if (size + INDEX_OVERHEAD > this.#maxBytes) {
      for (let oldest = this.#oldest(); oldest !== undefined; oldest = this.#oldest()) this.#forget(oldest)
      return
    }
    const at = this.#reserve(size)
    const ring = this.#ring
    ring.writeUInt32LE(size, at + SIZE)
    ring.writeUInt32LE(KEPT, at + STATE)
    ring.writeDoubleLE(endedAt, at + ENDED_AT)
    ring.writeDoubleLE(info.lastId, at + LAST_ID)
    ring.writeUInt32LE(info.count, at + COUNT)
    ring.writeUInt32LE(linesBytes, at + LINES_BYTES)
    ring.writeUInt32LE(info.id.length, at + CHARS)
    ring.writeUInt32LE(info.resumeToken.length, at + CHARS + 4)
    ring.writeUInt32LE(info.orgId.length, at + CHARS + 8)
    ring.writeUInt32LE(info.userId.length, at + CHARS + 12)
    ring.writeUInt32LE(info.agentId.length, at + CHARS + 16)
    ring.write(names, at + HEADER, 'utf16le')
    ring.write(info.lines, at + linesAt, 'utf8')
    this.#index.set(info.id, at)
    this.#bytes += size + INDEX_OVERHEAD
    while (this.#bytes > this.#maxBytes) this.#forget(this.#oldest() as number)
  }

  /** The kept stream `id`, for readers to follow; undefined when unknown or expired (then it is forgotten). */
  get (id: string, now: number): EndedStream | undefined {
    const at = this.#index.get(id)
    if (at === undefined) return undefined
    if (this.#expired(at, now)) {
      this.#forget(at)
      return undefined
    }
    const ring = this.#ring
    let from = at + HEADER
    const name = (i: number): string => {
      const to = from + 2 * ring.readUInt32LE(at + CHARS + 4 * i)
      const text = ring.toString('utf16le', from, to)
      from = to
      return text
    }
    const info: EndedInfo = {
      id: name(0),
      resumeToken: name(1),
      orgId: name(2),
      userId: name(3),
      agentId: name(4),
      lastId: ring.readDoubleLE(at + LAST_ID),
      count: ring.readUInt32LE(at + COUNT),
      lines: ring.toString('utf8', from, from + ring.readUInt32LE(at + LINES_BYTES))
    }
    return new EndedStream(info)
  }

  /** Forgets the streams whose TTL ran out: the oldest ones, from the tail. */
  expire (now: number): void {
    for (let oldest = this.#oldest(); oldest !== undefined && this.#expired(oldest, now); oldest = this.#oldest()) this.#forget(oldest)
  }

  clear (): void {
    this.#index.clear()
    this.#tail = this.#head = this.#bytes = 0
    this.#ring = newRing(FIRST_CAPACITY)
  }

  #at (position: number): number {
    return position % this.#ring.length
  }

  #expired (at: number, now: number): boolean {
    return now - this.#ring.readDoubleLE(at + ENDED_AT) >= this.#ttlMs
  }

  /** Where the oldest kept record starts; the tail moves past forgotten records and padding on the way. */
  #oldest (): number | undefined {
    const ring = this.#ring
    while (this.#tail < this.#head) {
      const at = this.#at(this.#tail)
      if (ring.readUInt32LE(at + STATE) === KEPT) return at
      this.#tail += ring.readUInt32LE(at + SIZE)
    }
    // Nothing kept: a ring that grew under load is let go.
    if (ring.length > FIRST_CAPACITY) this.clear()
    return undefined
  }

  #forget (at: number): void {
    const ring = this.#ring
    const size = ring.readUInt32LE(at + SIZE)
    this.#index.delete(ring.toString('utf16le', at + HEADER, at + HEADER + 2 * ring.readUInt32LE(at + CHARS)))
    ring.writeUInt32LE(FORGOTTEN, at + STATE)
    this.#bytes -= size + INDEX_OVERHEAD
    if (at === this.#at(this.#tail)) this.#tail += size
  }

  /**
   * Where a record of `size` bytes goes: at the head, or past the ring's end (the rest of it
   * padding) when it does not fit before it. When it does not fit at all the ring doubles, up to
   * its bound; at the bound the oldest kept streams make room (padding and streams forgotten
   * out of order take room the budget does not count).
   */
  #reserve (size: number): number {
    for (;;) {
      if (this.#tail === this.#head) this.#tail = this.#head = 0
      const capacity = this.#ring.length
      const untilEnd = capacity - this.#at(this.#head)
      const padding = size > untilEnd ? untilEnd : 0
      if (this.#head - this.#tail + padding + size <= capacity) {
        if (padding > 0) {
          const at = this.#at(this.#head)
          this.#ring.writeUInt32LE(padding, at + SIZE)
          this.#ring.writeUInt32LE(PADDING, at + STATE)
          this.#head += padding
        }
        const at = this.#at(this.#head)
        this.#head += size
        return at
      }
      if (capacity < this.#maxCapacity) {
        this.#grow(2 * capacity)
        continue
      }
      // At its bound and still no room: the oldest kept stream goes (or, when none is kept, the tail reaches the head).
      const oldest = this.#oldest()
      if (oldest !== undefined) this.#forget(oldest)
    }
  }

  /** Copies what the ring holds into one of `capacity` bytes, where each record's start is found anew. */
  #grow (capacity: number): void {
    const old = this.#ring
    const ring = newRing(capacity)
    for (let position = this.#tail; position < this.#head;) {
      const from = position % old.length
      const to = position % capacity
      const n = Math.min(this.#head - position, old.length - from, capacity - to)
      old.copy(ring, to, from, from + n)
      position += n
    }
    // A record's logical position is the one in [tail, tail + old length) that its old start stands for.
    const tailAt = this.#tail % old.length
    for (const [id, at] of this.#index) this.#index.set(id, (this.#tail + (at - tailAt + old.length) % old.length) % capacity)
    this.#ring = ring
  }
}
