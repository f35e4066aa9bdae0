// The endpoint contract every benchmarked server implements, so the comparison is fair:
// JWT check (fast-jwt, HS256 pinned), body validation (ajv), then start, one content event
// per token, done; every event one AgentMem StreamChunk. Tokens come from the message
// ("You said: <words>"), as agentmem-stream's built-in model makes them.
import { createVerifier } from 'fast-jwt'
import { Ajv } from 'ajv'
import OpenAI from 'openai'
import { readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeHeapSnapshot } from 'node:v8'
import { monitorEventLoopDelay } from 'node:perf_hooks'

export const SECRET = 'bench-secret-bench-secret-bench-secret'
export const AGENT_PATH = /^\/api\/v1\/agents\/([^/]+)\/chat\/stream$/

const verify = createVerifier({ key: SECRET, algorithms: ['HS256'], requiredClaims: ['exp', 'sub', 'org_id'], cache: true })
const validate = new Ajv().compile({
  type: 'object',
  required: ['message'],
  properties: { message: { type: 'string', minLength: 1, maxLength: 100000 }, session_id: { type: 'string' } }
})

// With UPSTREAM_URL set (scenarios with an upstream), tokens come from the OpenAI-compatible
// mock through the openai SDK, as agentmem-stream gets them; otherwise they are made in process.
const upstream = process.env.UPSTREAM_URL === undefined ? null : new OpenAI({ apiKey: 'k', baseURL: process.env.UPSTREAM_URL, maxRetries: 0 })
export const RELAYING = upstream !== null

/** Aborts when the response closes, so a relayed upstream request ends with it; nothing to make when not relaying. */
export function closeSignal (res) {
  if (upstream === null) return undefined
  const closed = new AbortController()
  res.once('close', () => closed.abort())
  return closed.signal
}

/** The upstream's text deltas for one message, as an async iterable; the signal cuts the request. */
export async function * relay (message, signal) {
  const stream = await upstream.chat.completions.create({ model: 'm', stream: true, messages: [{ role: 'user', content: message }] }, { signal })
  for await (const part of stream) {
    const text = part.choices[0]?.delta?.content
    if (text) yield text
  }
}

/**
 * Returns an error status, or the tokens to stream: an array or generator in process, an async
 * iterable when relaying (`signal` then aborts the upstream request).
 */
export function check (authorization, body, signal) {
  try {
    verify((authorization ?? '').slice(7))
  } catch {
    return { status: 401 }
  }
  let parsed
  try {
    parsed = JSON.parse(body)
  } catch {
    return { status: 400 }
  }
  if (!validate(parsed)) return { status: 400 }
  if (upstream !== null) return { tokens: relay(parsed.message, signal), hold: false }
  const words = `You said: ${parsed.message}`.match(/\S+\s*/g)
  // `tokens: n` (long-stream and slow-reader scenarios) cycles the words n times over, lazily.
  return { tokens: Number.isInteger(parsed.tokens) ? cycle(words, parsed.tokens) : words, hold: parsed.hold === true }
}

function * cycle (words, count) {
  for (let i = 0; i < count; i++) yield words[i % words.length]
}

export const chunk = (type, content = null) => JSON.stringify({ chunk_type: type, content, tool_call: null, memories_count: null })

/** In hold mode (idle-capacity scenario) the stream sends start and one token, then stays open. */
export const HOLD_MS = 10 * 60 * 1000

/** Heartbeat comment interval, set like agentmem-stream's STREAM_KEEPALIVE_MS (15 s by default). */
export const KEEPALIVE_MS = Number(process.env.KEEPALIVE_MS ?? 15_000)
export const KEEP_ALIVE = ': keep-alive\n\n'

export function readBody (req) {
  return new Promise((resolve) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (d) => { body += d })
    req.on('end', () => resolve(body))
  })
}

/** IPC with the harness: report the port, and memory/CPU after a forced GC on request. */
export function serve (listen) {
  // How late the server's event loop ran timers since the last stats call: tells its own queueing from the harness's.
  const loopDelay = monitorEventLoopDelay({ resolution: 1 })
  loopDelay.enable()
  listen(Number(process.env.PORT ?? 0)).then((port) => {
    process.send?.({ type: 'ready', port })
  })
  process.on('message', (msg) => {
    // A normal exit, so --cpu-prof writes its profile.
    if (msg.type === 'exit') process.exit(0)
    if (msg.type === 'heap') process.send?.({ type: 'heap', summary: heapSummary() })
    // CPU alone, with no forced GC: a window that ends with one would count it.
    if (msg.type === 'cpu') process.send?.({ type: 'cpu', cpu: process.cpuUsage() })
    if (msg.type === 'stats') {
      globalThis.gc?.()
      globalThis.gc?.()
      const { rss, heapUsed } = process.memoryUsage()
      process.send?.({ type: 'stats', rss, heapUsed, cpu: process.cpuUsage(), loopDelayMs: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 } })
      loopDelay.reset()
    }
  })
}

/** Live heap after GC, as bytes and counts per constructor (objects, closures) or per node type. */
function heapSummary () {
  globalThis.gc?.()
  const file = writeHeapSnapshot(join(tmpdir(), `bench-${process.pid}.heapsnapshot`))
  const snapshot = JSON.parse(readFileSync(file, 'utf8'))
  rmSync(file)
  const { node_fields: fields, node_types: [types] } = snapshot.snapshot.meta
  const summary = {}
  for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
    const type = types[snapshot.nodes[i]]
    const key = type === 'object' || type === 'closure' ? `${type} ${snapshot.strings[snapshot.nodes[i + 1]]}` : type
    const entry = summary[key] ??= { count: 0, bytes: 0 }
    entry.count++
    entry.bytes += snapshot.nodes[i + 3]
  }
  return summary
}
