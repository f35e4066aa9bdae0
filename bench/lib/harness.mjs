// Plumbing shared by the scenarios: server processes, the OpenAI-compatible mock, SSE clients.
import { fork } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSigner } from 'fast-jwt'
import { SECRET } from '../servers/contract.mjs'

export const SERVERS = ['agentmem', 'baseline', 'fastify', 'hono', 'express']
/** Scenarios 1 and 4 also run the contract limit (servers/limit.mjs), which replays agentmem-stream's own bytes. */
export const WITH_LIMIT = ['agentmem', 'limit', 'baseline', 'fastify', 'hono', 'express']
const PEERS = new Set(['fastify', 'hono', 'express'])

/** Where a server's entry point lives: the peer frameworks in bench/peers/, ours and the baseline in bench/servers/. */
export const serverScript = (name) => new URL(`../${PEERS.has(name) ? 'peers' : 'servers'}/${name}.mjs`, import.meta.url)
export const now = () => performance.timeOrigin + performance.now()
export const token = createSigner({ key: SECRET, expiresIn: 3_600_000 })({ sub: 'bench', org_id: 'bench' })

/** Starts one server in its own process (so its CPU and memory are its own); `script` overrides where its entry point is. */
export async function startServer (name, env = {}, script = serverScript(name)) {
  if (name === 'limit' && env.RECORDED_TURN === undefined) env = { ...env, RECORDED_TURN: await recordedTurn() }
  const child = fork(script, [], {
    execArgv: ['--expose-gc'],
    env: {
      PATH: process.env.PATH,
      PORT: '0',
      JWT_SECRET: SECRET,
      DATABASE_URL: 'sqlite::memory:',
      BUILTIN_TOKEN_DELAY_MS: '0',
      STREAM_MAX_PER_TENANT: '100000',
      STREAM_MAX_TOTAL: '100000',
      ...env
    },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc']
  })
  const [msg] = await once(child, 'message')
  const stats = async () => {
    child.send({ type: 'stats' })
    const [reply] = await once(child, 'message')
    return { rss: reply.rss, heapUsed: reply.heapUsed, cpuMs: (reply.cpu.user + reply.cpu.system) / 1000, loopDelayMs: reply.loopDelayMs }
  }
  /** The server's CPU ms so far, read without the forced GC of `stats()`. */
  const cpuMs = async () => {
    child.send({ type: 'cpu' })
    const [reply] = await once(child, 'message')
    return (reply.cpu.user + reply.cpu.system) / 1000
  }
  const stop = async () => {
    child.kill('SIGKILL')
    await once(child, 'exit')
  }
  const server = { name, port: msg.port, child, stats, cpuMs, stop, agent: 'agent-bench' }
  if (name === 'agentmem') server.agent = await createAgent(msg.port)
  return server
}

let recording
/**
 * agentmem-stream's bytes for scenario 1's turn (the 18-word message, 20 content events), recorded
 * once per run from a real server and kept as its frames in a file, for the contract limit to replay.
 */
export function recordedTurn () {
  recording ??= (async () => {
    const server = await startServer('agentmem')
    const res = await fetch(`http://127.0.0.1:${server.port}${streamPath(server)}`, { method: 'POST', headers, body: JSON.stringify({ message: Array.from({ length: 18 }, (_, i) => `w${i}`).join(' ') }) })
    const frames = (await res.text()).split(/(?<=\n\n)/)
    await server.stop()
    const file = join(tmpdir(), `agentmem-turn-${process.pid}.json`)
    writeFileSync(file, JSON.stringify(frames))
    return file
  })()
  return recording
}

async function createAgent (port) {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/agents`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ name: 'bench' })
  })
  return (await res.json()).data.id
}

/** Environment that points every server at the mock: agentmem-stream's provider, the others' relay. */
export const upstreamEnv = (mock) => ({ LLM_PROVIDER: 'openai', OPENAI_API_KEY: 'k', OPENAI_BASE_URL: mock.url, UPSTREAM_URL: mock.url })

export const streamPath = (server) => `/api/v1/agents/${server.agent}/chat/stream`
export const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` }

/**
 * One stream over its own connection, counting what arrives without a full parse (the client
 * must not be the bottleneck). Resolves when the response ends.
 */
export function runStream (server, body, opts = {}) {
  return new Promise((resolve, reject) => {
    const result = { status: 0, events: 0, bytes: 0, firstContentAt: 0, done: false }
    const req = http.request({
      host: '127.0.0.1', port: server.port, path: streamPath(server), method: 'POST',
      headers: { ...headers, ...opts.headers }, localAddress: opts.localAddress, agent: opts.agent ?? false
    }, (res) => {
      result.status = res.statusCode
      let tail = ''
      let last = ''
      res.on('data', (buf) => {
        opts.onData?.()
        result.bytes += buf.length
        if (opts.raw) return
        const chunk = buf.toString('latin1')
        // Blank lines end events; only the previous chunk's last character is looked at again (a
        // blank line split across two chunks), so no event is counted twice however small the chunks.
        const fresh = last + chunk
        let at = 0
        while ((at = fresh.indexOf('\n\n', at)) !== -1) { result.events++; at += 2 }
        last = fresh.endsWith('\n\n') ? '' : chunk.slice(-1)
        const text = tail + chunk
        if (result.firstContentAt === 0 && text.includes('"chunk_type":"content"')) {
          result.firstContentAt = now()
          opts.onFirstContent?.(result, req)
        }
        if (text.includes('"chunk_type":"done"')) result.done = true
        tail = text.slice(-40)
      })
      res.on('end', () => resolve(result))
      res.on('close', () => resolve(result))
      opts.onResponse?.(res, req)
    })
    req.on('error', (err) => (opts.ignoreErrors ? resolve(result) : reject(err)))
    opts.onRequest?.(req)
    req.end(JSON.stringify(body))
  })
}

export function stats (values) {
  const sorted = [...values].sort((a, b) => a - b)
  return { min: sorted[0], median: sorted[Math.floor((sorted.length - 1) / 2)], max: sorted.at(-1) }
}

export function percentile (values, p) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))]
}

/**
 * A minimal OpenAI-compatible streaming endpoint: n tokens as fast as the socket takes them, or
 * one every `tokenDelayMs`, after a first-token delay of `firstTokenDelayMs` plus up to
 * `firstTokenJitterMs` at random (so concurrent streams do not all get their first token at once).
 */
export async function startMock () {
  const firstTokenAt = new Map()
  const mock = { firstTokenAt, tokens: 20, firstTokenDelayMs: 0, firstTokenJitterMs: 0, tokenDelayMs: 0 }
  const server = http.createServer(async (req, res) => {
    let raw = ''
    for await (const d of req) raw += d
    const body = JSON.parse(raw)
    if (body.stream !== true) {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: '{"facts":[]}' } }] }))
      return
    }
    const nonce = body.messages.at(-1).content
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    // On the wire at once, as OpenAI's API and vLLM send them when they accept a request; Node would
    // hold them until the first token, making "accepted" and "first token" one event for the servers.
    res.flushHeaders()
    const firstDelay = mock.firstTokenDelayMs + Math.random() * mock.firstTokenJitterMs
    if (firstDelay > 0) await sleep(firstDelay)
    for (let i = 0; i < mock.tokens; i++) {
      if (i > 0 && mock.tokenDelayMs > 0) await sleep(mock.tokenDelayMs)
      if (res.destroyed) return
      const ok = res.write(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok${i % 10} "},"finish_reason":null}]}\n\n`)
      if (i === 0) firstTokenAt.set(nonce, now())
      if (!ok) {
        await once(res, 'drain')
        if (res.destroyed) return
      }
    }
    res.end('data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  mock.url = `http://127.0.0.1:${server.address().port}/v1`
  mock.close = () => { server.closeAllConnections(); server.close() }
  return mock
}

/** Holds `count` streams open, each from one of several loopback source addresses (the port range caps one pair near 28k). */
export async function openIdleStreams (server, count, extraHeaders = '') {
  const sockets = []
  const request = `POST ${streamPath(server)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ${token}\r\n${extraHeaders}`
  // A compressed body cannot be searched for text: there, any body byte after the headers will do.
  const arrived = extraHeaders.includes('gzip')
    ? (seen) => seen.indexOf('\r\n\r\n') !== -1 && seen.length > seen.indexOf('\r\n\r\n') + 4
    : (seen) => seen.includes('"chunk_type":"content"')
  const body = JSON.stringify({ message: 'hold this stream open', hold: true })
  const batch = 200
  for (let i = 0; i < count; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, count - i) }, (_, j) => new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: server.port, localAddress: `127.0.0.${2 + ((i + j) % 8)}` })
      socket.on('error', reject)
      socket.write(`${request}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
      let seen = ''
      const onData = (d) => {
        seen += d.toString('latin1')
        if (arrived(seen)) {
          socket.off('data', onData)
          socket.on('data', () => {})
          sockets.push(socket)
          resolve()
        }
      }
      socket.on('data', onData)
    })))
  }
  return sockets
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100
/**
 * CPU ms (user + system) spent so far by every process on this machine whose name starts with one
 * of `names`: the PostgreSQL backends and the Redis server in scenario 7, read from /proc.
 */
export function processCpuMs (names) {
  let total = 0
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    let stat
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    } catch {
      continue // the process ended between the listing and the read
    }
    const close = stat.lastIndexOf(')')
    const comm = stat.slice(stat.indexOf('(') + 1, close)
    if (!names.some((n) => comm.startsWith(n))) continue
    const fields = stat.slice(close + 2).split(' ')
    total += (Number(fields[11]) + Number(fields[12])) * 1000 / USER_HZ
  }
  return total
}
