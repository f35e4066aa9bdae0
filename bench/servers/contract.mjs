// The endpoint contract every benchmarked server implements, so the comparison is fair:
// JWT check (fast-jwt, HS256 pinned), body validation (ajv), then start, one content event
// per token, done; every event one AgentMem StreamChunk. Tokens come from the message
// ("You said: <words>"), as agentmem-stream's built-in model makes them.
import { createVerifier } from 'fast-jwt'
import { Ajv } from 'ajv'

export const SECRET = 'bench-secret-bench-secret-bench-secret'
export const AGENT_PATH = /^\/api\/v1\/agents\/([^/]+)\/chat\/stream$/

const verify = createVerifier({ key: SECRET, algorithms: ['HS256'], requiredClaims: ['exp', 'sub', 'org_id'], cache: true })
const validate = new Ajv().compile({
  type: 'object',
  required: ['message'],
  properties: { message: { type: 'string', minLength: 1, maxLength: 100000 }, session_id: { type: 'string' } }
})

/** Returns an error status, or the tokens to stream. */
export function check (authorization, body) {
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
  listen(Number(process.env.PORT ?? 0)).then((port) => {
    process.send?.({ type: 'ready', port })
  })
  process.on('message', (msg) => {
    // A normal exit, so --cpu-prof writes its profile.
    if (msg.type === 'exit') process.exit(0)
    if (msg.type === 'stats') {
      globalThis.gc?.()
      globalThis.gc?.()
      const { rss, heapUsed } = process.memoryUsage()
      process.send?.({ type: 'stats', rss, heapUsed, cpu: process.cpuUsage() })
    }
  })
}
