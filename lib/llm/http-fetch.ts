import http from 'node:http'
import { slicedFetch, slices } from './sliced-fetch.js'

/** One pool of kept-alive connections to plain-HTTP upstreams; Node's agent retires a socket before the server's Keep-Alive timeout. */
const agent = new http.Agent({ keepAlive: true })

/**
 * `fetch` for the openai SDK: a plain-HTTP upstream (a local vLLM, Ollama, LM Studio, a gateway
 * beside the server) is asked over node:http, which costs less CPU per request than fetch
 * (`node bench/sdk-fetch.mjs` measures both), and a turn makes two (the reply, the memory
 * extraction). HTTPS upstreams, bodies that are not text or bytes, and redirects keep to fetch
 * (`slicedFetch`).
 *
 * What it answers is the part of a Response the SDK reads: ok, status, headers, url, body (async
 * iterable, in slices as `slicedFetch` cuts them), text() and json(). It asks for identity
 * coding (RFC 9110 §12.5.3), so nothing arrives compressed; the SDK's signal aborts the request
 * and its body, as it aborts fetch's.
 */
export async function upstreamFetch (input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
  const body = init.body
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : null
  if (url?.startsWith('http:') !== true || (body != null && typeof body !== 'string' && !(body instanceof Uint8Array))) {
    return await slicedFetch(input, init)
  }
  const headers: Record<string, string> = { 'accept-encoding': 'identity' }
  // The SDK passes a Headers: read as it is, not copied into another first.
  const given = init.headers instanceof Headers ? init.headers : new Headers(init.headers)
  for (const [name, value] of given) headers[name] = value
  const signal = init.signal ?? undefined
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request(url, { method: init.method ?? 'GET', headers, agent, signal }, resolve)
    req.on('error', reject)
    req.end(body ?? undefined)
  })
  // A redirect (an http:// base URL that moved to https://, say) is fetch's to follow, as before.
  const status = res.statusCode as number
  if (status >= 300 && status < 400 && res.headers.location !== undefined) {
    res.resume()
    return await slicedFetch(input, init)
  }
  return new UpstreamResponse(url, res, signal) as unknown as Response
}

/** A node:http response as the SDK reads a fetch Response (see `upstreamFetch`). */
class UpstreamResponse {
  readonly url: string
  readonly status: number
  readonly statusText: string
  readonly ok: boolean
  readonly headers = new Headers()
  readonly body: AsyncGenerator<Uint8Array>

  constructor (url: string, res: http.IncomingMessage, signal: AbortSignal | undefined) {
    this.url = url
    this.status = res.statusCode as number
    this.statusText = res.statusMessage as string
    this.ok = this.status >= 200 && this.status < 300
    const raw = res.rawHeaders
    for (let i = 0; i < raw.length; i += 2) this.headers.append(raw[i] as string, raw[i + 1] as string)
    this.body = bodyOf(res, signal)
  }

  async text (): Promise<string> {
    const chunks: Uint8Array[] = []
    for await (const chunk of this.body) chunks.push(chunk)
    return Buffer.concat(chunks).toString('utf8')
  }

  async json (): Promise<unknown> {
    return JSON.parse(await this.text())
  }
}

/**
 * The body's chunks in slices (see sliced-fetch.ts). When the request was aborted the error is the
 * signal's (an AbortError, which the SDK takes for the end of an aborted stream, as with fetch),
 * not the socket's. Leaving early ends the response's iteration, which destroys it and so frees
 * the connection.
 */
async function * bodyOf (res: http.IncomingMessage, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
  try {
    yield * slices(res)
  } catch (err) {
    throw signal?.aborted === true ? signal.reason : err
  }
}
