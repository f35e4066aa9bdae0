import http from 'node:http'
import { createParser, type EventSourceMessage } from 'eventsource-parser'

export interface ReceivedEvent extends EventSourceMessage {
  /** data parsed as JSON */
  json: Record<string, unknown>
  at: number
}

export interface RequestOptions {
  method?: string
  headers?: Record<string, string>
  body?: string | Buffer
  /** Leave the body alone (binary, e.g. gzip): the test reads `res` itself. */
  rawBody?: boolean
}

/**
 * A real HTTP client over its own socket, parsing SSE with an independent parser
 * (eventsource-parser), recording what a user would see and when.
 */
export class StreamClient {
  status = 0
  headers: http.IncomingHttpHeaders = {}
  readonly events: ReceivedEvent[] = []
  readonly comments: string[] = []
  retry: number | null = null
  raw = ''
  readonly req: http.ClientRequest
  res: http.IncomingMessage | null = null
  /** Resolves once the response ended or the connection closed. */
  readonly ended: Promise<void>
  readonly #responded: Promise<void>
  #waiters: Array<() => void> = []

  constructor (url: string, opts: RequestOptions = {}) {
    const parser = createParser({
      onEvent: (event) => {
        this.events.push({ ...event, json: JSON.parse(event.data), at: performance.now() })
        this.#wake()
      },
      onComment: (comment) => {
        this.comments.push(comment)
        this.#wake()
      },
      onRetry: (ms) => { this.retry = ms }
    })
    let endedResolve!: () => void
    this.ended = new Promise((resolve) => { endedResolve = resolve })
    this.req = http.request(url, { method: opts.method ?? 'POST', headers: opts.headers, agent: false })
    this.#responded = new Promise((resolve, reject) => {
      this.req.on('response', (res) => {
        this.res = res
        this.status = res.statusCode as number
        this.headers = res.headers
        if (opts.rawBody !== true) {
          res.setEncoding('utf8')
          res.on('data', (text: string) => {
            this.raw += text
            parser.feed(text)
          })
        }
        res.on('close', () => {
          endedResolve()
          this.#wake()
        })
        resolve()
      })
      this.req.on('error', (err) => {
        endedResolve()
        this.#wake()
        reject(err)
      })
    })
    this.#responded.catch(() => {})
    this.req.end(opts.body)
  }

  async response (): Promise<this> {
    await this.#responded
    return this
  }

  /** The parsed JSON body of a non-SSE answer. */
  async json (): Promise<Record<string, unknown>> {
    await this.ended
    return JSON.parse(this.raw)
  }

  /** Waits until `predicate` holds over what arrived so far, or the connection ends. */
  async until (predicate: (c: this) => boolean): Promise<void> {
    while (!predicate(this)) {
      const ended = await Promise.race([
        new Promise<false>((resolve) => this.#waiters.push(() => resolve(false))),
        this.ended.then(() => true)
      ])
      if (ended && !predicate(this)) throw new Error(`stream ended before condition; events: ${this.events.map((e) => e.data).join(' | ')}`)
    }
  }

  async untilEvents (n: number): Promise<void> {
    await this.until((c) => c.events.length >= n)
  }

  types (): unknown[] {
    return this.events.map((e) => e.json.chunk_type)
  }

  text (): string {
    return this.events.filter((e) => e.json.chunk_type === 'content').map((e) => e.json.content).join('')
  }

  last (): Record<string, unknown> | undefined {
    return this.events.at(-1)?.json
  }

  destroy (): void {
    this.req.destroy()
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w()
  }
}

export async function request (url: string, opts: RequestOptions = {}): Promise<StreamClient> {
  const client = new StreamClient(url, opts)
  await client.response()
  await client.ended
  return client
}

/** The position in an event id `<stream id>:<n>`; NaN for anything else. */
export function seqOf (id: string | undefined): number {
  const match = /^stream-[\w-]+:(\d+)$/.exec(id ?? '')
  return match === null ? Number.NaN : Number(match[1])
}
