import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'

/** What the fake OpenAI upstream does with the next request(s). */
export interface UpstreamScript {
  tokens?: string[]
  /** Answer this status with an OpenAI-style JSON error instead of streaming. */
  status?: number
  firstTokenDelayMs?: number
  tokenDelayMs?: number
  /** Accept the connection but never send response headers. */
  hangBeforeHeaders?: boolean
  /** Send this many tokens, then stay silent with the connection open until resume(). */
  hangAfterTokens?: number
  /** Send this many tokens, then cut the socket. */
  dieAfterTokens?: number
  /** Send tokens until the client goes away, honouring TCP backpressure. */
  forever?: boolean
  /** After this many tokens, send a chunk that is not JSON. */
  garbageAfterTokens?: number
  usage?: boolean
  /** Tool calls streamed after the tokens, each with its arguments split into the given fragments. */
  toolCalls?: Array<{ id?: string, name: string, fragments: string[] }>
  /** For a non-streaming request (memory extraction): the JSON the model "answers". */
  json?: unknown
  /** Delay before a non-streaming answer. */
  jsonDelayMs?: number
  /** A reasoning model's thinking, streamed before the tokens, one delta each. */
  reasoning?: string[]
  /** The delta field it comes in: DeepSeek/vLLM say reasoning_content, OpenRouter/Ollama reasoning. */
  reasoningField?: 'reasoning_content' | 'reasoning'
  reasoningDelayMs?: number
  /** Stream this many reasoning deltas, then stay silent until resume(). */
  hangAfterReasoning?: number
  /** Reported as usage.completion_tokens_details.reasoning_tokens. */
  reasoningTokens?: number
  /** Structured-output modes (json_schema, json_object, or instruction: no response_format) answered with a 400. */
  refuseModes?: string[]
  /** Modes ignored: the answer is prose instead of JSON. */
  proseModes?: string[]
}

export interface ReceivedRequest {
  path: string
  headers: http.IncomingHttpHeaders
  body: {
    model: string
    stream: boolean
    messages: Array<{ role: string, content: string }>
    [key: string]: unknown
  }
}

/**
 * A real HTTP server speaking OpenAI's chat-completions streaming format, so the product's
 * `openai` SDK code path runs for real in tests.
 */
export class FakeOpenAI {
  /** Used for every chat request unless `queue` has one waiting. */
  script: UpstreamScript = {}
  /** Scripts for the next streaming chat requests, first in first out. */
  readonly queue: UpstreamScript[] = []
  /** Script for non-streaming chat requests (memory extraction). */
  jsonScript: UpstreamScript = { json: { facts: [] } }
  readonly embeddingRequests: string[][] = []
  /** When set, the embeddings endpoint answers this error status. */
  embeddingStatus: number | undefined
  /** The embeddings endpoint waits this long before it answers. */
  embeddingDelayMs = 0
  /** Streaming chat requests, in arrival order. */
  readonly requests: ReceivedRequest[] = []
  /** Non-streaming chat requests (memory extraction). */
  readonly jsonRequests: ReceivedRequest[] = []
  /** Tokens actually handed to the socket (forever mode counts only accepted writes). */
  sentTokens = 0
  /** Requests whose client closed the connection before the upstream finished. */
  clientAborts = 0
  readonly #server: http.Server
  #abortWaiters: Array<() => void> = []
  #resumers: Array<() => void> = []
  url = ''

  constructor () {
    this.#server = http.createServer((req, res) => { void this.#handle(req, res) })
  }

  async start (): Promise<this> {
    this.#server.listen(0, '127.0.0.1')
    await once(this.#server, 'listening')
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/v1`
    return this
  }

  async close (): Promise<void> {
    this.#server.closeAllConnections()
    this.#server.close()
    await once(this.#server, 'close')
  }

  /** Resolves at the next client abort (or at once if one happened since the last call). */
  async nextAbort (): Promise<void> {
    await new Promise<void>((resolve) => this.#abortWaiters.push(resolve))
  }

  /** Lets every request held by `hangAfterTokens` go on. */
  resume (): void {
    const resumers = this.#resumers
    this.#resumers = []
    for (const r of resumers) r()
  }

  async #handle (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let raw = ''
    for await (const chunk of req) raw += String(chunk)
    const body = JSON.parse(raw) as ReceivedRequest['body']
    if ((req.url as string).endsWith('/embeddings')) {
      const input = body.input as string[]
      this.embeddingRequests.push(input)
      if (this.embeddingDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.embeddingDelayMs))
      if (this.embeddingStatus !== undefined) {
        res.writeHead(this.embeddingStatus, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: { message: 'embeddings down', type: 'server_error' } }))
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      // The SDK asks for base64 (packed float32) by default, as OpenAI serves it.
      const encode = (v: number[]): number[] | string => body.encoding_format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v
      res.end(JSON.stringify({ object: 'list', model: body.model, data: input.map((text, index) => ({ object: 'embedding', index, embedding: encode(embedText(text)) })) }))
      return
    }
    const received = { path: req.url as string, headers: req.headers, body }
    if (body.stream === true) this.requests.push(received)
    else this.jsonRequests.push(received)
    const s = body.stream === true ? this.queue.shift() ?? this.script : this.jsonScript
    let finished = false
    res.on('close', () => {
      if (finished) return
      this.clientAborts++
      const waiters = this.#abortWaiters
      this.#abortWaiters = []
      for (const w of waiters) w()
    })
    if (s.hangBeforeHeaders === true) return
    if (s.status !== undefined) {
      finished = true
      res.writeHead(s.status, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { message: `scripted ${s.status}`, type: 'server_error', code: null } }))
      return
    }
    if (body.stream !== true) {
      if (s.jsonDelayMs !== undefined) await sleep(s.jsonDelayMs)
      finished = true
      const mode = (body.response_format as { type?: string } | undefined)?.type ?? 'instruction'
      if (s.refuseModes?.includes(mode) === true) {
        res.writeHead(400, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: { message: `response_format ${mode} is not supported`, type: 'invalid_request_error', code: null } }))
        return
      }
      const content = s.proseModes?.includes(mode) === true ? 'Sure! The user seems to like tea.' : JSON.stringify(s.json)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({
        id: 'chatcmpl-json', object: 'chat.completion', created: 1, model: body.model,
        choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: mode === 'instruction' ? `Here it is:\n\`\`\`json\n${content}\n\`\`\`` : content } }]
      }))
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    const chunk = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}): string =>
      `data: ${JSON.stringify({ id: 'chatcmpl-test', object: 'chat.completion.chunk', created: 1, model: body.model, choices: [{ index: 0, delta, finish_reason: null }], ...extra })}\n\n`
    // Real servers open with a role-only delta and sometimes send choice-less keep-alive chunks.
    res.write(chunk({ role: 'assistant' }))
    res.write(`data: ${JSON.stringify({ id: 'chatcmpl-test', object: 'chat.completion.chunk', created: 1, model: body.model, choices: [] })}\n\n`)
    for (const [i, thought] of (s.reasoning ?? []).entries()) {
      if (i > 0 && s.reasoningDelayMs !== undefined) await sleep(s.reasoningDelayMs)
      if (s.hangAfterReasoning === i) await new Promise<void>((resolve) => this.#resumers.push(resolve))
      if (res.destroyed) return
      res.write(chunk({ [s.reasoningField ?? 'reasoning_content']: thought, content: null }))
    }
    if (s.firstTokenDelayMs !== undefined) await sleep(s.firstTokenDelayMs)
    const tokens = s.tokens ?? ['Hello', ' from', ' upstream']
    for (let i = 0; s.forever === true || i < tokens.length; i++) {
      if (res.destroyed) return
      if (i > 0 && s.tokenDelayMs !== undefined) await sleep(s.tokenDelayMs)
      if (s.hangAfterTokens === i) await new Promise<void>((resolve) => this.#resumers.push(resolve))
      if (res.destroyed) return
      if (s.garbageAfterTokens === i) {
        finished = true
        res.end('data: {"id":"chatcmpl-test","choices":[{"delta":{"content":"trunc\n\n')
        return
      }
      if (s.dieAfterTokens === i) {
        finished = true
        res.destroy()
        return
      }
      const ok = res.write(chunk({ content: tokens[i % tokens.length] }))
      this.sentTokens++
      if (!ok) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            res.off('drain', done)
            res.off('close', done)
            resolve()
          }
          res.on('drain', done)
          res.on('close', done)
        })
      }
    }
    for (const [index, call] of (s.toolCalls ?? []).entries()) {
      call.fragments.forEach((fragment, i) => {
        // An empty first fragment is left out, as providers that send the name alone do.
        const args = fragment === '' ? {} : { arguments: fragment }
        const head = i === 0 ? { id: call.id, type: 'function', function: { name: call.name, ...args } } : { function: args }
        res.write(chunk({ tool_calls: [{ index, ...head }] }))
      })
    }
    const finish = s.toolCalls === undefined ? 'stop' : 'tool_calls'
    res.write(`data: ${JSON.stringify({ id: 'chatcmpl-test', object: 'chat.completion.chunk', created: 1, model: body.model, choices: [{ index: 0, delta: {}, finish_reason: finish }] })}\n\n`)
    if (s.usage !== false) {
      res.write(`data: ${JSON.stringify({ id: 'chatcmpl-test', object: 'chat.completion.chunk', created: 1, model: body.model, choices: [], usage: { prompt_tokens: 7, completion_tokens: tokens.length, total_tokens: 7 + tokens.length, ...(s.reasoningTokens === undefined ? {} : { completion_tokens_details: { reasoning_tokens: s.reasoningTokens } }) } })}\n\n`)
    }
    finished = true
    res.end('data: [DONE]\n\n')
  }
}

/** A deterministic toy embedding: letter frequencies, so texts sharing words point the same way. */
export function embedText (text: string): number[] {
  const v = new Array<number>(26).fill(0)
  for (const ch of text.toLowerCase()) {
    const i = ch.charCodeAt(0) - 97
    if (i >= 0 && i < 26) v[i] = (v[i] as number) + 1
  }
  return v
}

/** A FakeOpenAI for one test, closed after it. */
export async function startUpstream (t: { teardown: (fn: () => Promise<void>) => void }): Promise<FakeOpenAI> {
  const upstream = await new FakeOpenAI().start()
  t.teardown(async () => { await upstream.close() })
  return upstream
}
