import type { ServerResponse } from 'node:http'
import { frameComment, frameEvent } from './frame.js'

/** Raised when a reader leaves the socket buffer full for longer than the drain bound. */
export class SlowConsumerError extends Error {
  readonly ms: number
  constructor (ms: number) {
    super(`Client did not read for ${ms} ms`)
    this.name = 'SlowConsumerError'
    this.ms = ms
  }
}

/** Raised when the client's connection closes before the stream ended. */
export class ClientGoneError extends Error {
  constructor () {
    super('Client disconnected')
    this.name = 'ClientGoneError'
  }
}

export interface SseWriterOptions {
  keepAliveMs: number
  drainTimeoutMs: number
  /** Aborting it stops any wait for drain at once. */
  signal: AbortSignal
}

export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
  Connection: 'keep-alive'
}

const KEEP_ALIVE = frameComment('keep-alive')

/**
 * Thin I/O around the pure framer. When `send` reports a full buffer the producer awaits
 * `drained()` before pulling more tokens, so per-stream memory stays at one socket buffer
 * plus one event however slow the reader.
 */
export class SseWriter {
  readonly #res: ServerResponse
  readonly #opts: SseWriterOptions
  #nextId = 1
  #keepAlive: NodeJS.Timeout | undefined

  constructor (res: ServerResponse, opts: SseWriterOptions) {
    this.#res = res
    this.#opts = opts
  }

  get bufferedBytes (): number {
    return this.#res.writableLength
  }

  open (extraHeaders: Record<string, string> = {}): void {
    const res = this.#res
    res.socket?.setNoDelay(true)
    res.writeHead(200, { ...SSE_HEADERS, ...extraHeaders })
    res.flushHeaders()
    this.#keepAlive = setInterval(() => {
      // A full buffer already proves the connection is not idle; piling comments on it would not.
      if (!res.writableNeedDrain) res.write(KEEP_ALIVE)
    }, this.#opts.keepAliveMs)
    this.#keepAlive.unref()
  }

  /** Writes one event; false means the socket buffer is full and the caller should await `drained()`. */
  send (data: string): boolean {
    return this.#res.write(frameEvent(data, { id: String(this.#nextId++) }))
  }

  /** Settles when the reader caught up; rejects on close, abort, or after the drain bound. */
  drained (): Promise<void> {
    const res = this.#res
    const { signal, drainTimeoutMs } = this.#opts
    return new Promise<void>((resolve, reject) => {
      signal.throwIfAborted()
      const settle = (err?: unknown): void => {
        clearTimeout(timer)
        res.off('drain', onDrain)
        res.off('close', onClose)
        signal.removeEventListener('abort', onAbort)
        if (err === undefined) resolve()
        else reject(err)
      }
      const onDrain = (): void => settle()
      const onClose = (): void => settle(new ClientGoneError())
      const onAbort = (): void => settle(signal.reason)
      const timer = setTimeout(() => settle(new SlowConsumerError(drainTimeoutMs)), drainTimeoutMs)
      res.once('drain', onDrain)
      res.once('close', onClose)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Ends the response, or tears the socket down when the reader is stuck. */
  end (destroy = false): void {
    clearInterval(this.#keepAlive)
    if (destroy) this.#res.destroy()
    else this.#res.end()
  }
}
