import type { Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { within } from './settle.js'

/**
 * A connection that speaks raw bytes to the server, for what an HTTP client library would not
 * send (malformed requests, half-open sockets, a body cut short). Closed at the test's end.
 */
export class RawConnection {
  readonly socket: net.Socket
  /** Everything the server sent so far. */
  received = ''
  readonly closed: Promise<void>

  constructor (t: Test, url: string, opts: { allowHalfOpen?: boolean } = {}) {
    this.socket = net.connect({ port: Number(new URL(url).port), host: '127.0.0.1', allowHalfOpen: opts.allowHalfOpen === true })
    this.socket.setEncoding('utf8')
    this.socket.on('data', (d: string) => { this.received += d })
    this.socket.on('error', () => {})
    this.closed = once(this.socket, 'close').then(() => {})
    t.teardown(() => { this.socket.destroy() })
  }

  /** Waits until `done(received)` holds or the server closed; fails after `timeoutMs`. */
  async until (done: (received: string) => boolean, timeoutMs = 5000): Promise<string> {
    await within(new Promise<void>((resolve) => {
      const check = (): void => { if (done(this.received)) resolve() }
      this.socket.on('data', check)
      void this.closed.then(resolve)
      check()
    }), timeoutMs, 'the server\'s answer')
    return this.received
  }
}

/** Sends raw bytes, then FIN, and returns everything the server answered before closing. */
export async function rawExchange (t: Test, url: string, text: string): Promise<{ status: number, body: Record<string, unknown> | null, raw: string }> {
  const connection = new RawConnection(t, url)
  connection.socket.end(text)
  await within(connection.closed, 5000, 'the server to close')
  const raw = connection.received
  const [head = '', body = ''] = raw.split('\r\n\r\n', 2)
  return { status: Number(head.split(' ')[1]), body: body.startsWith('{') ? JSON.parse(body) : null, raw }
}
