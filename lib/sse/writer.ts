import type { AbortSource } from '../cancel.js'
import type { Writable } from 'node:stream'
import { constants as zlibConstants, createGzip, type Gzip } from 'node:zlib'
import { frameComment, frameRetry } from './frame.js'
import type { AppResponse, CloseWatcher } from '../http/response.js'
import type { KeepAliveTarget, KeepAliveTicker } from './keep-alive.js'

/** Raised when a reader leaves the socket buffer full for longer than the drain bound. */
export class SlowConsumerError extends Error {
  readonly code = 'slow_consumer'
  readonly ms: number
  constructor (ms: number) {
    super(`Client did not read for ${ms} ms`)
    this.name = 'SlowConsumerError'
    this.ms = ms
  }
}

/** Raised when the client's connection closes before the stream ended. */
export class ClientGoneError extends Error {
  readonly code = 'client_gone'
  constructor () {
    super('Client disconnected')
    this.name = 'ClientGoneError'
  }
}

/** What a reader is attached to (a stream's sink): told when the reader's connection closed. */
export interface ReaderOwner {
  detach: (writer: SseWriter, reason: Error) => void
}

export interface SseWriterOptions {
  /** Sends this stream a comment every interval while it is open. */
  keepAlive: KeepAliveTicker
  drainTimeoutMs: number
  /** Aborting it stops any wait for drain at once; its signal is read only when a wait begins. */
  abort: AbortSource
  /** Sent once as `retry:` (in the first event's block), so clients reconnect promptly. */
  retryMs: number
  /** gzip the stream, flushing after every event so each one arrives as soon as it is written. */
  gzip?: boolean
}

export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  // No Connection header: Node answers keep-alive, or `close` (and closes after the terminal
  // event) when the request asked for it (RFC 9112 §9.6).
  'X-Accel-Buffering': 'no'
}

const GZIP_SSE_HEADERS: Readonly<Record<string, string>> = { ...SSE_HEADERS, 'Content-Encoding': 'gzip' }

const KEEP_ALIVE = frameComment('keep-alive')
/**
 * The keep-alive comment as one chunk of a chunked response, framed once for every stream: the
 * ticker sends it to 10,000 idle streams a second, and `res.write` would frame it anew each time
 * (its length in hex, then four buffers to the socket).
 */
const KEEP_ALIVE_CHUNK = Buffer.from(`${Buffer.byteLength(KEEP_ALIVE).toString(16)}\r\n${KEEP_ALIVE}\r\n`, 'latin1')

/** How long a turn's last events wait for its ending (see `holdForEnding`) before they leave anyway. */
export const ENDING_HOLD_MS = 20

/*
 * Deflate state is about (1 << (windowBits + 2)) + (1 << (memLevel + 9)) bytes: 4 KiB + 4 KiB
 * here instead of 256 KiB with the defaults. SSE events are short and repetitive, so the small
 * window costs little ratio (bench/RESULTS.md has the figures, and the per-stream RSS).
 */
const GZIP_OPTIONS = { level: 6, windowBits: 10, memLevel: 3, chunkSize: 1024 }

/**
 * Thin I/O around the pure framer. When `write` reports a full buffer the producer awaits
 * `drained()` before pulling more tokens, so per-stream memory stays at one socket buffer
 * plus one event however slow the reader.
 */
export class SseWriter implements KeepAliveTarget, CloseWatcher {
  readonly #res: AppResponse
  // The options' lasting fields, not the options object (64 bytes a stream).
  readonly #keepAlive: KeepAliveTicker
  readonly #abort: AbortSource
  readonly #drainTimeoutMs: number
  readonly #gzip: Gzip | undefined
  readonly #out: Writable
  /** Frames written this tick: they leave in one write when it ends, at once past the high-water mark. */
  #pending = ''
  #flushScheduled = false
  /** Set while this tick's frames wait for the next frame or the end (see `holdForEnding`). */
  #held: NodeJS.Timeout | null = null
  /** `retry:` goes out in the first event's block, so no block of the stream lacks `data:`. */
  #prefix: string
  /** Stored by writeHead but not on the wire until something is written (or they are flushed). */
  #headersPending = false
  /** What this reader leaves when its connection closes (see `detachOnClose`). */
  #owner: ReaderOwner | null = null
  /** Its place in the keep-alive ticker's list. */
  listSlot = -1

  constructor (res: AppResponse, opts: SseWriterOptions) {
    this.#res = res
    this.#keepAlive = opts.keepAlive
    this.#abort = opts.abort
    this.#drainTimeoutMs = opts.drainTimeoutMs
    this.#gzip = opts.gzip === true ? createGzip(GZIP_OPTIONS) : undefined
    this.#out = this.#gzip ?? res
    this.#prefix = frameRetry(opts.retryMs)
  }

  /**
   * From now on the connection closing before the response finished detaches this reader from
   * `owner`: the response's watcher, told by its one close listener, not a closure of its own.
   */
  detachOnClose (owner: ReaderOwner): void {
    this.#owner = owner
    this.#res.closeWatcher = this
  }

  responseClosed (): void {
    if (!this.#res.writableFinished) (this.#owner as ReaderOwner).detach(this, new ClientGoneError())
  }

  get bufferedBytes (): number {
    return this.#pending.length + this.#res.writableLength + (this.#gzip?.writableLength ?? 0)
  }

  open (): void {
    const res = this.#res
    res.socket?.setNoDelay(true)
    // Whether it is compressed depends on Accept-Encoding either way, so caches must key on it.
    res.vary('Accept-Encoding')
    res.writeHead(200, this.#gzip === undefined ? SSE_HEADERS : GZIP_SSE_HEADERS)
    // Without gzip the headers ride in the first write when events come in this tick (one
    // syscall, not two); gzip output comes later, off the main thread, so then they go out now.
    if (this.#gzip !== undefined) res.flushHeaders()
    else {
      this.#headersPending = true
      this.#flushSoon()
    }
    this.#gzip?.pipe(res)
    this.#keepAlive.add(this)
  }

  /** Called by the ticker, in a tick of its own: the comment leaves at once. */
  keepAlive (): boolean {
    // A full buffer already proves the connection is not idle; piling comments on it would not.
    if (this.#out.writableNeedDrain) return false
    this.#release()
    const res = this.#res
    const socket = res.socket
    // Nothing else waits to go (no frame of this tick, no header, no compressor, nothing unsent
    // on the socket): the framed chunk goes straight to the socket, after all the response wrote.
    // Node gives a response its socket only once it is the connection's current one.
    if (this.#pending === '' && !this.#headersPending && this.#gzip === undefined && res.chunkedEncoding &&
      socket !== null && socket.writableLength === 0) {
      socket.write(KEEP_ALIVE_CHUNK)
      return true
    }
    this.#pending += KEEP_ALIVE
    this.#flush()
    return true
  }

  /**
   * Writes framed SSE text; false means the buffer is full and the caller should await `drained()`.
   * Events written in the same tick leave together, in one write of the response (one chunk, one
   * syscall, one gzip flush) when the tick ends, which adds no delay: nothing else could run
   * before then anyway. Past the high-water mark they leave at once, so a producer that never
   * yields is still paused by a full buffer.
   */
  write (frame: string): boolean {
    this.#release()
    this.#pending += this.#prefix + frame
    this.#prefix = ''
    if (this.#pending.length >= this.#out.writableHighWaterMark) return this.#flush()
    this.#flushSoon()
    return !this.#out.writableNeedDrain
  }

  /**
   * What this tick wrote waits for the turn's ending instead of leaving at the tick's end: the
   * turn is storing its reply, and its next frame comes once the store answered (the same loop
   * turn on SQLite, a round trip later on PostgreSQL), so the last events and the ending leave in
   * one write, one syscall instead of two. Every path after the store writes a frame (the
   * extraction notice, or the error) or ends the response; a store slower than ENDING_HOLD_MS
   * does not keep the reply's last words from the reader any longer than that.
   */
  holdForEnding (): void {
    if (this.#flushScheduled && this.#held === null) this.#held = setTimeout(SseWriter.#holdEnded, ENDING_HOLD_MS, this)
  }

  static #holdEnded (writer: SseWriter): void {
    writer.#held = null
    writer.#flush()
  }

  #release (): void {
    if (this.#held === null) return
    clearTimeout(this.#held)
    this.#held = null
  }

  #flushSoon (): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    process.nextTick(SseWriter.#tickEnded, this)
  }

  /** The writer rides as the callback's argument: a static function, not a closure every open stream would hold. */
  static #tickEnded (writer: SseWriter): void {
    writer.#onTickEnd()
  }

  #onTickEnd (): void {
    this.#flushScheduled = false
    if (this.#held === null) this.#flush()
  }

  /** What is pending, in one write, flushed through gzip when compressing so the reader can decode it at once. */
  #flush (): boolean {
    const text = this.#pending
    if (text === '') {
      // No event came in the tick the stream opened: the headers must not wait for one.
      if (this.#headersPending) {
        this.#headersPending = false
        this.#res.flushHeaders()
      }
      return !this.#out.writableNeedDrain
    }
    this.#pending = ''
    if (this.#headersPending) return this.#writeWithHeaders(text)
    const ok = this.#out.write(text)
    this.#gzip?.flush(zlibConstants.Z_SYNC_FLUSH)
    return ok
  }

  /**
   * The stored headers and the first frames, still one syscall (the socket is corked). Node keeps
   * the header text for the response's life as a tree of concatenations, about 20 nodes; written
   * on its own it is flattened, so an open stream holds one string (~0.6 KB less) instead.
   * Only uncompressed streams come here: gzip flushes its headers when it opens.
   */
  #writeWithHeaders (text: string): boolean {
    const res = this.#res
    this.#headersPending = false
    res.cork()
    res.flushHeaders()
    const ok = res.write(text)
    res.uncork()
    return ok
  }

  /** Settles when the reader caught up; rejects on close, abort, or after the drain bound. */
  drained (): Promise<void> {
    const out = this.#out
    const res = this.#res
    const drainTimeoutMs = this.#drainTimeoutMs
    const signal = this.#abort.signal
    return new Promise<void>((resolve, reject) => {
      signal.throwIfAborted()
      const settle = (err?: unknown): void => {
        clearTimeout(timer)
        out.off('drain', onDrain)
        res.off('close', onClose)
        signal.removeEventListener('abort', onAbort)
        if (err === undefined) resolve()
        else reject(err)
      }
      const onDrain = (): void => settle()
      const onClose = (): void => settle(new ClientGoneError())
      const onAbort = (): void => settle(signal.reason)
      const timer = setTimeout(() => settle(new SlowConsumerError(drainTimeoutMs)), drainTimeoutMs)
      out.once('drain', onDrain)
      res.once('close', onClose)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Ends the response, or tears the socket down when the reader is stuck. */
  end (destroy = false): void {
    this.#keepAlive.delete(this)
    this.#release()
    if (destroy) {
      this.#pending = ''
      this.#gzip?.destroy()
      this.#res.destroy()
    } else {
      // The last frames and the end of the response in one write.
      const text = this.#pending
      this.#pending = ''
      this.#headersPending = false
      this.#out.end(text)
    }
  }
}
