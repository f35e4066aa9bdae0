// node bench/profile.mjs [seconds]: scenario 1's load (autocannon, 100 connections) against
// agentmem-stream and the baseline, each under --cpu-prof; then scenario 4's idle streams with a
// heap snapshot before and after. Writes bench/PROFILE.md: the CPU each spends per stream and,
// for agentmem-stream, where it goes by area, the hottest functions, and what an idle stream
// holds. The .cpuprofile files land in bench/profiles/ (git-ignored) for Chrome DevTools.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import autocannon from 'autocannon'
import { headers, openIdleStreams, serverScript, startServer } from './lib/harness.mjs'
import { SECRET } from './servers/contract.mjs'

const seconds = Number(process.argv[2] ?? 8)
const root = new URL('./profiles/', import.meta.url).pathname

/** What each module of agentmem-stream does for a turn, so the table reads as work, not file names. */
const AREAS = [
  [/#extract|\/memory\//, 'memory: extraction and memory_update events'],
  [/\/store\//, 'store (SQLite): agent lookup, memory search, user message and reply inserts'],
  [/\/auth\//, 'auth: JWT verification'],
  [/\/http\/body|schemas\.js/, 'request body: read, JSON parse, ajv validation'],
  [/\/sse\/writer/, 'socket writes: headers, corked event writes, end (syscalls)'],
  [/\/sse\/|\/chat\/sinks|\/resume\//, 'SSE framing, state machine, broadcast, replay log, resume token'],
  [/\/chat\/|\/llm\//, 'turn: prompt, built-in model, run loop, timers, abort signal'],
  [/\/observability\/|^onRunEnd /, 'metrics and logs'],
  [/\/dist\/lib\//, 'routing, limits, request handler']
]

async function profile (name) {
  const dir = `${root}${name}/`
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const child = fork(serverScript(name), [], {
    execArgv: ['--cpu-prof', `--cpu-prof-dir=${dir}`],
    env: { PATH: process.env.PATH, PORT: '0', JWT_SECRET: SECRET, DATABASE_URL: 'sqlite::memory:', BUILTIN_TOKEN_DELAY_MS: '0', STREAM_MAX_PER_TENANT: '100000' },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc']
  })
  const [msg] = await once(child, 'message')
  let agent = 'agent-bench'
  if (name === 'agentmem') {
    const res = await fetch(`http://127.0.0.1:${msg.port}/api/v1/agents`, { method: 'POST', headers, body: JSON.stringify({ name: 'profile' }) })
    agent = (await res.json()).data.id
  }
  const result = await autocannon({
    url: `http://127.0.0.1:${msg.port}`,
    connections: 100,
    duration: seconds,
    requests: [{ method: 'POST', path: `/api/v1/agents/${agent}/chat/stream`, headers, body: JSON.stringify({ message: Array.from({ length: 18 }, (_, i) => `w${i}`).join(' ') }) }]
  })
  child.send({ type: 'exit' })
  await once(child, 'exit')
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  return { streams: result.requests.total, rate: result.requests.average, ...summarize(JSON.parse(readFileSync(dir + file, 'utf8'))) }
}

/** Self time per function, and per area: each sample goes to the nearest agentmem-stream frame on its stack. */
function summarize (profile) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map()
  const areas = new Map()
  let busy = 0
  const add = (map, key, dt) => map.set(key, (map.get(key) ?? 0) + dt)
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0
    const { functionName, url, lineNumber } = nodes.get(id).callFrame
    if (functionName === '(idle)') return
    busy += dt
    add(self, `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`, dt)
    let area = functionName === '(garbage collector)' ? 'garbage collection' : 'Node outside any handler: HTTP parsing, event loop'
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = nodes.get(cur).callFrame
      if (!frame.url.includes('/dist/lib/')) continue
      const at = `${frame.functionName} ${frame.url}`
      area = AREAS.find(([pattern]) => pattern.test(at))[1]
      break
    }
    add(areas, area, dt)
  })
  return { busy, self, areas }
}

/** Heap per idle stream, by constructor: snapshots before and after opening `count` held streams. */
async function idleHeap (name, count) {
  const server = await startServer(name, { BUILTIN_TOKEN_DELAY_MS: '600000', STREAM_IDLE_TIMEOUT_MS: '3600000', STREAM_MAX_DURATION_MS: '3600000' })
  const heap = async () => {
    server.child.send({ type: 'heap' })
    const [reply] = await once(server.child, 'message')
    return reply.summary
  }
  await openIdleStreams(server, 20) // warm-up: lazily made things are no stream's
  const before = await heap()
  const sockets = await openIdleStreams(server, count)
  const after = await heap()
  for (const socket of sockets) socket.destroy()
  await server.stop()
  return Object.entries(after)
    .map(([key, a]) => ({ key, count: (a.count - (before[key]?.count ?? 0)) / count, bytes: (a.bytes - (before[key]?.bytes ?? 0)) / count }))
    .filter((e) => e.bytes > 0)
    .sort((x, y) => y.bytes - x.bytes)
}

const us = (n) => Math.round(n).toLocaleString('en-US')
const ours = await profile('agentmem')
const base = await profile('baseline')
const IDLE = 2000
const heapOurs = await idleHeap('agentmem', IDLE)
const heapBase = await idleHeap('baseline', IDLE)
const heapTotal = (rows) => rows.reduce((n, r) => n + r.bytes, 0)
const perStream = (p, t) => t / p.streams
const fmtInt = (n) => n.toLocaleString('en-US')
const lines = [
  '# Where a short stream\'s CPU goes',
  '',
  `Produced by \`node bench/profile.mjs ${seconds}\` on ${new Date().toISOString().slice(0, 10)} (${os.cpus()[0].model.split(' ').slice(0, 2).join(' ')}, ${os.cpus().length} cores, Node ${process.version}).`,
  '',
  `Scenario 1's load (100 connections, ${seconds} s, 20-token replies, built-in model at 0 delay, SQLite in memory) against each server under \`--cpu-prof\` (which slows both). CPU per stream is the profile's busy time (idle excluded) over the streams completed.`,
  '',
  '| server | streams/s under the profiler | CPU µs per stream |',
  '|---|---|---|',
  `| agentmem | ${us(ours.rate)} | ${us(perStream(ours, ours.busy))} |`,
  `| baseline | ${us(base.rate)} | ${us(perStream(base, base.busy))} |`,
  '',
  '## agentmem-stream by area',
  '',
  'Each sample is charged to the nearest agentmem-stream function on its stack (so a socket write counts where it was made).',
  '',
  '| area | µs per stream | share |',
  '|---|---|---|',
  ...[...ours.areas].sort((a, b) => b[1] - a[1]).map(([area, t]) => `| ${area} | ${us(perStream(ours, t))} | ${(t / ours.busy * 100).toFixed(1)}% |`),
  '',
  '## agentmem-stream\'s hottest functions (self time)',
  '',
  '| function | share |',
  '|---|---|',
  ...[...ours.self].sort((a, b) => b[1] - a[1]).slice(0, 20).map(([fn, t]) => `| \`${fn}\` | ${(t / ours.busy * 100).toFixed(1)}% |`),
  '',
  '## What an idle stream holds',
  '',
  `${fmtInt(IDLE)} streams held open after their first content event (scenario 4's set-up), heap snapshots after GC before and after; growth per stream. agentmem-stream: ${us(heapTotal(heapOurs))} bytes; baseline: ${us(heapTotal(heapBase))} bytes. The largest entries for agentmem-stream, next to the baseline's:`,
  '',
  '| heap entry | agentmem count | agentmem bytes | baseline count | baseline bytes |',
  '|---|---|---|---|---|',
  ...heapOurs.slice(0, 25).map((r) => {
    const b = heapBase.find((x) => x.key === r.key)
    return `| ${r.key.trim() || '(unnamed)'} | ${r.count.toFixed(1)} | ${us(r.bytes)} | ${(b?.count ?? 0).toFixed(1)} | ${us(b?.bytes ?? 0)} |`
  }),
  ''
]
writeFileSync(new URL('./PROFILE.md', import.meta.url), lines.join('\n'))
console.log(lines.join('\n'))
