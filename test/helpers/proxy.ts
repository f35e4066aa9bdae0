import net from 'node:net'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'

/**
 * A TCP proxy in front of a server, so a test can drop a client's connection mid-stream as a
 * network would: `cut()` destroys every open connection on both sides at once.
 */
export class TcpProxy {
  /** Connections accepted so far. */
  connections = 0
  url = ''
  readonly #server: net.Server
  readonly #open = new Set<net.Socket>()

  constructor (target: URL) {
    this.#server = net.createServer((client) => {
      this.connections++
      const upstream = net.connect(Number(target.port), target.hostname)
      for (const socket of [client, upstream]) {
        this.#open.add(socket)
        socket.on('close', () => this.#open.delete(socket))
        socket.on('error', () => {})
      }
      client.pipe(upstream).pipe(client)
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
    })
  }

  static async start (target: string): Promise<TcpProxy> {
    const proxy = new TcpProxy(new URL(target))
    proxy.#server.listen(0, '127.0.0.1')
    await once(proxy.#server, 'listening')
    proxy.url = `http://127.0.0.1:${(proxy.#server.address() as AddressInfo).port}`
    return proxy
  }

  cut (): void {
    for (const socket of this.#open) socket.destroy()
  }

  async close (): Promise<void> {
    this.cut()
    this.#server.close()
    await once(this.#server, 'close')
  }
}
