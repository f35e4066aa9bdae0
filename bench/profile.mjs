// node bench/profile.mjs [seconds]: scenario 1's load (autocannon, 100 connections) against
// agentmem-stream and the baseline, each under --cpu-prof; then scenario 4's idle streams with a
// heap snapshot before and after; then scenario 3's relayed turns at 100 streams, profiled.
// Writes bench/PROFILE.md: the CPU each spends per stream and,
// for agentmem-stream, where it goes by area, the hottest functions, and what an idle stream
// holds. The .cpuprofile files land in bench/profiles/ (git-ignored) for Chrome DevTools.
// `--before <checkout>` profiles an older build too (a checkout with its dist/ built), in the
// same run, and adds a before/after table: CPU per stream (under the profiler, and the process's
// without it, the builds alternated), promises per token, what an idle stream holds.
// A short stream's allocations (garbage included) are sampled too, by area.
import { execFileSync, fork } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import autocannon from 'autocannon'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { headers, now, openIdleStreams, runStream, serverScript, startMock, startServer, upstreamEnv } from './lib/harness.mjs'
import { SECRET } from './servers/contract.mjs'
import { perToken } from './per-token.mjs'

const args = process.argv.slice(2)
const beforeAt = args.indexOf('--before')
const before = beforeAt < 0 ? null : new URL(`${args.splice(beforeAt, 2)[1].replace(/\/?$/, '/')}`, 'file:///')
const seconds = Number(args[0] ?? 8)
/** Which code the older checkout holds, said in the report. */
const beforeCommit = before === null ? '' : (() => {
  try {
    return `commit ${execFileSync('git', ['-C', before.pathname, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim()}`
  } catch {
    return 'not a git checkout'
  }
})()
const root = new URL('./profiles/', import.meta.url).pathname

const LOGS_AND_METRICS = 'metrics and logs'
const OUTSIDE = 'Node outside any handler: HTTP parsing, event loop'
/** What each module of agentmem-stream does for a turn, so the table reads as work, not file names. */
const AREAS = [
  [/\/llm\/(http|sliced)-fetch/, 'upstream requests: the SDK\'s fetch (node:http, or fetch for HTTPS)'],
  [/extract|\/memory\//, 'memory: extraction and memory_update events'],
  [/\/store\//, 'store (SQLite): agent lookup, memory search, user message and reply inserts'],
  [/\/auth\//, 'auth: JWT verification'],
  [/\/http\/body|schemas\.js/, 'request body: read, JSON parse, ajv validation'],
  [/\/sse\/writer/, 'socket writes: headers, one write per tick, end (syscalls)'],
  [/\/sse\/|\/protocol\/|\/stream\/(sinks|replay-log|registry|token)/, 'SSE framing, state machine, broadcast, replay log, resume token'],
  [/\/stream\/(turn|run)|\/chat\/|\/llm\//, 'turn: prompt, built-in model, push pipeline, timers, abort signal'],
  [/\/observability\/|\/stream\/supervisor/, LOGS_AND_METRICS],
  [/\/dist\/lib\//, 'routing, limits, request handler']
]

/** Logging and metrics libraries: their work is charged to logs and metrics wherever it was called from. */
const TELEMETRY = /\/node_modules\/(pino|sonic-boom|prom-client)\//

/**
 * The area a stack belongs to, from its leaf up (`frames`): logs and metrics when it runs in
 * their libraries, else the nearest agentmem-stream function's, else `outside`.
 */
function areaOf (frames, outside) {
  for (const frame of frames) {
    if (TELEMETRY.test(frame.url)) return LOGS_AND_METRICS
    if (frame.url.includes('/dist/lib/')) return AREAS.find(([pattern]) => pattern.test(`${frame.functionName} ${frame.url}`))[1]
  }
  return outside
}

/**
 * Minor page faults of process `pid` so far (Linux's /proc; NaN elsewhere): each is a page of
 * memory the process touched for the first time since it had it, which a growing heap pays.
 */
function minorFaults (pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[7])
  } catch {
    return Number.NaN
  }
}

/** What a fresh page costs on this machine: 64 MiB of new memory filled (every page touched once), timed, per 4 KiB. */
function pageFaultUs () {
  const t0 = performance.now()
  Buffer.allocUnsafeSlow(64 << 20).fill(1)
  return (performance.now() - t0) * 1000 / (16 << 10)
}

/** The entry point of `name`, in this checkout or in `checkout`. */
const scriptOf = (name, checkout) => checkout === null ? serverScript(name) : new URL(`bench/servers/${name}.mjs`, checkout)

/**
 * `name` (from `checkout`) under --cpu-prof with `env`, driven by `drive(server)` until it
 * resolves with how many streams completed; then the profile summarized.
 */
async function profiled (name, checkout, env, drive, label = name, cpuProf = true) {
  const dir = `${root}${label}${checkout === null ? '' : '-before'}/`
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const child = fork(scriptOf(name, checkout), [], {
    execArgv: cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [],
    env: { PATH: process.env.PATH, PORT: '0', JWT_SECRET: SECRET, DATABASE_URL: 'sqlite::memory:', BUILTIN_TOKEN_DELAY_MS: '0', STREAM_MAX_PER_TENANT: '100000', ...env },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc']
  })
  const [msg] = await once(child, 'message')
  const server = { port: msg.port, agent: 'agent-bench' }
  if (name === 'agentmem') {
    const res = await fetch(`http://127.0.0.1:${msg.port}/api/v1/agents`, { method: 'POST', headers, body: JSON.stringify({ name: 'profile' }) })
    server.agent = (await res.json()).data.id
  }
  /** The process's own CPU (user + system, every thread), which the profile's samples of the main thread leave out in part. */
  const cpu = async () => {
    child.send({ type: 'cpu' })
    const [reply] = await once(child, 'message')
    return reply.cpu.user + reply.cpu.system
  }
  const from = await cpu()
  const faultsFrom = minorFaults(child.pid)
  const { streams, rate } = await drive(server)
  const processUs = await cpu() - from
  const faults = minorFaults(child.pid) - faultsFrom
  child.send({ type: 'exit' })
  await once(child, 'exit')
  if (!cpuProf) return { streams, rate, processUs, faults }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  return { streams, rate, processUs, faults, ...summarize(JSON.parse(readFileSync(dir + file, 'utf8'))) }
}

/** Scenario 1's load for `duration` s: autocannon, 100 connections, 20-token streams from the built-in model. */
function shortLoad (server, duration) {
  return autocannon({
    url: `http://127.0.0.1:${server.port}`,
    connections: 100,
    duration,
    requests: [{ method: 'POST', path: `/api/v1/agents/${server.agent}/chat/stream`, headers, body: JSON.stringify({ message: Array.from({ length: 18 }, (_, i) => `w${i}`).join(' ') }) }]
  })
}

/** Scenario 1's load: autocannon, 100 connections, short streams from the built-in model. */
async function profile (name, checkout = null, cpuProf = true) {
  return await profiled(name, checkout, {}, async (server) => {
    const result = await shortLoad(server, seconds)
    return { streams: result.requests.total, rate: result.requests.average }
  }, name, cpuProf)
}

/** Scenario 3's load at 100 streams: turns relayed from the OpenAI-compatible mock (10 tokens 100 ms apart), back to back. */
async function relayed (name, checkout = null, cpuProf = true) {
  const mock = await startMock()
  Object.assign(mock, { tokens: 10, tokenDelayMs: 100, firstTokenDelayMs: 50, firstTokenJitterMs: 50 })
  const out = await profiled(name, checkout, upstreamEnv(mock), async (server) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 100 })
    let streams = 0
    const t0 = now()
    await Promise.all(Array.from({ length: 100 }, async (_, i) => {
      await sleep(i * 10)
      while (now() - t0 < seconds * 1000) if ((await runStream(server, { message: `profile-${i}` }, { agent })).done) streams++
    }))
    agent.destroy()
    return { streams, rate: streams / seconds }
  }, `${name}-relayed`, cpuProf)
  mock.close()
  return out
}

/**
 * Process CPU µs per stream of `load` for this build and the one before, without the profiler
 * (which weighs code shapes unevenly), the builds alternated: the median of three of each.
 */
async function unprofiled (load) {
  const runs = { now: [], before: [] }
  const faults = { now: [], before: [] }
  for (let r = 0; r < 3; r++) {
    for (const [key, checkout] of [['now', null], ['before', before]]) {
      const out = await load('agentmem', checkout, false)
      runs[key].push(out.processUs / out.streams)
      faults[key].push(out.faults / out.streams)
    }
  }
  const median = (values) => values.sort((a, b) => a - b)[1]
  return { now: median(runs.now), before: median(runs.before), faults: { now: median(faults.now), before: median(faults.before) } }
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
    const frames = []
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) frames.push(nodes.get(cur).callFrame)
    add(areas, areaOf(frames, functionName === '(garbage collector)' ? 'garbage collection' : OUTSIDE), dt)
  })
  return { busy, self, areas }
}

/**
 * Bytes allocated per short stream (garbage included: what the collector clears), by area:
 * scenario 1's load for 2 s to warm up, then `seconds` / 2 s under V8's sampling heap profiler.
 */
async function allocations (name, checkout = null) {
  const server = await startServer(name, { SERVER_SCRIPT: scriptOf(name, checkout).href }, new URL('./lib/alloc-server.mjs', import.meta.url))
  await shortLoad(server, 2)
  server.child.send({ type: 'alloc-start' })
  await once(server.child, 'message')
  const { requests } = await shortLoad(server, Math.max(1, seconds / 2))
  const file = `${root}alloc-${name}${checkout === null ? '' : '-before'}.heapprofile`
  mkdirSync(root, { recursive: true })
  server.child.send({ type: 'alloc-stop', path: file })
  await once(server.child, 'message')
  await server.stop()
  const areas = new Map()
  let bytes = 0
  const walk = (node, stack) => {
    const frames = [node.callFrame, ...stack]
    if (node.selfSize > 0) {
      bytes += node.selfSize
      const area = areaOf(frames, OUTSIDE)
      areas.set(area, (areas.get(area) ?? 0) + node.selfSize)
    }
    for (const child of node.children) walk(child, frames)
  }
  walk(JSON.parse(readFileSync(file, 'utf8')).head, [])
  return { streams: requests.total, bytes, areas }
}

/** Heap per idle stream, by constructor: snapshots before and after opening `count` held streams. */
async function idleHeap (name, count, checkout = null) {
  const server = await startServer(name, { BUILTIN_TOKEN_DELAY_MS: '600000', STREAM_IDLE_TIMEOUT_MS: '3600000', STREAM_MAX_DURATION_MS: '3600000' }, scriptOf(name, checkout))
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
const allocOurs = await allocations('agentmem')
const relayedOurs = await relayed('agentmem')
const relayedBase = await relayed('baseline')
const heapTotal = (rows) => rows.reduce((n, r) => n + r.bytes, 0)
const tokensNow = await perToken()
const was = before === null
  ? null
  : { cpu: await profile('agentmem', before), alloc: await allocations('agentmem', before), heap: await idleHeap('agentmem', IDLE, before), tokens: await perToken(new URL('dist/lib/index.js', before)), relayed: await relayed('agentmem', before), plainShort: await unprofiled(profile), plainRelayed: await unprofiled(relayed) }
/** Per idle stream: entries whose name says what they are. */
const entry = (rows, pattern) => rows.filter((r) => pattern.test(r.key)).reduce((n, r) => ({ count: n.count + r.count, bytes: n.bytes + r.bytes }), { count: 0, bytes: 0 })
const COMPARED = [['closures', /^closure/], ['generators', /Generator|AsyncGenerator|#rounds|#generate|readDeltas/], ['promises', /^object Promise$/], ['AbortSignal / AbortController', /Abort(Signal|Controller)/]]
const perStream = (p, t) => t / p.streams
const fmtInt = (n) => n.toLocaleString('en-US')
const lines = [
  '# Where a short stream\'s CPU goes',
  '',
  `Produced by \`node bench/profile.mjs ${seconds}${before === null ? '' : ` --before ${before.pathname}`}\` on ${new Date().toISOString().slice(0, 10)} (${os.cpus()[0].model.split(' ').slice(0, 2).join(' ')}, ${os.cpus().length} cores, Node ${process.version}).`,
  '',
  `Scenario 1's load (100 connections, ${seconds} s, 20-token replies, built-in model at 0 delay, SQLite in memory) against each server under \`--cpu-prof\` (which slows both). CPU per stream is the profile's busy time (idle excluded) over the streams completed.`,
  '',
  '| server | streams/s under the profiler | CPU µs per stream | minor page faults per stream |',
  '|---|---|---|---|',
  `| agentmem | ${us(ours.rate)} | ${us(perStream(ours, ours.busy))} | ${perStream(ours, ours.faults).toFixed(2)} |`,
  `| baseline | ${us(base.rate)} | ${us(perStream(base, base.busy))} | ${perStream(base, base.faults).toFixed(2)} |`,
  '',
  `A fresh page costs ${pageFaultUs().toFixed(1)} µs on this machine (64 MiB of new memory filled, timed, per 4 KiB page): memory a turn leaves behind for longer than the young generation (a stream kept for resumes, a growing heap) is paid for in faults as well as in GC.`,
  '',
  ...(was === null
    ? []
    : [
        '## Before and after',
        '',
        `The same measurements of the build in \`${before.pathname}\` (${beforeCommit}), in this run. Promises per token come from \`bench/per-token.mjs\` (in process, async_hooks counting every promise; a 2,020-token turn minus a 20-token one, over 2,000).`,
        '',
        '| measure | before | after |',
        '|---|---|---|',
        `| CPU µs per short stream (under the profiler) | ${us(perStream(was.cpu, was.cpu.busy))} | ${us(perStream(ours, ours.busy))} |`,
        `| CPU µs per relayed turn (under the profiler) | ${us(perStream(was.relayed, was.relayed.busy))} | ${us(perStream(relayedOurs, relayedOurs.busy))} |`,
        `| process CPU µs per relayed turn (user + system, under the profiler) | ${us(perStream(was.relayed, was.relayed.processUs))} | ${us(perStream(relayedOurs, relayedOurs.processUs))} |`,
        `| process CPU µs per short stream (no profiler; builds alternated, median of 3) | ${us(was.plainShort.before)} | ${us(was.plainShort.now)} |`,
        `| process CPU µs per relayed turn (no profiler; builds alternated, median of 3) | ${us(was.plainRelayed.before)} | ${us(was.plainRelayed.now)} |`,
        `| minor page faults per short stream (no profiler; as above) | ${was.plainShort.faults.before.toFixed(2)} | ${was.plainShort.faults.now.toFixed(2)} |`,
        `| bytes allocated per short stream (garbage included) | ${us(perStream(was.alloc, was.alloc.bytes))} | ${us(perStream(allocOurs, allocOurs.bytes))} |`,
        `| promises per token | ${was.tokens.promisesPerToken.toFixed(2)} | ${tokensNow.promisesPerToken.toFixed(2)} |`,
        `| promises per turn (20 tokens) | ${was.tokens.promisesPerTurn} | ${tokensNow.promisesPerTurn} |`,
        `| CPU µs per token, in process (client included) | ${was.tokens.cpuUsPerToken.toFixed(2)} | ${tokensNow.cpuUsPerToken.toFixed(2)} |`,
        `| heap bytes per idle stream | ${us(heapTotal(was.heap))} | ${us(heapTotal(heapOurs))} |`,
        ...COMPARED.map(([label, pattern]) => {
          const a = entry(was.heap, pattern)
          const b = entry(heapOurs, pattern)
          return `| ${label} per idle stream (count, bytes) | ${a.count.toFixed(1)}, ${us(a.bytes)} | ${b.count.toFixed(1)}, ${us(b.bytes)} |`
        }),
        ''
      ]),
  `Promises per token now: ${tokensNow.promisesPerToken.toFixed(2)} (\`node bench/per-token.mjs\`); per 20-token turn: ${tokensNow.promisesPerTurn}.`,
  '',
  '## agentmem-stream by area',
  '',
  'Each sample is charged to the nearest agentmem-stream function on its stack (so a socket write counts where it was made).',
  '',
  '| area | µs per stream | share |',
  '|---|---|---|',
  ...[...ours.areas].sort((a, b) => b[1] - a[1]).map(([area, t]) => `| ${area} | ${us(perStream(ours, t))} | ${(t / ours.busy * 100).toFixed(1)}% |`),
  '',
  '## What a short stream allocates, by area',
  '',
  `Bytes allocated per stream under scenario 1's load (${Math.max(1, seconds / 2)} s after a 2 s warm-up), sampled by V8's heap profiler with collected objects kept in the count (\`bench/lib/alloc-server.mjs\`): the garbage a turn leaves for the collector. ${us(perStream(allocOurs, allocOurs.bytes))} bytes per stream${was === null ? '' : ` (before: ${us(perStream(was.alloc, was.alloc.bytes))})`}. Charged like the CPU samples; a logging or metrics library's allocations count as logs and metrics wherever they were called from.`,
  '',
  `| area | bytes per stream | share${was === null ? '' : ' | before'} |`,
  `|---|---|---${was === null ? '' : '|---'}|`,
  ...[...allocOurs.areas].sort((a, b) => b[1] - a[1]).map(([area, n]) => `| ${area} | ${us(perStream(allocOurs, n))} | ${(n / allocOurs.bytes * 100).toFixed(1)}%${was === null ? '' : ` | ${us(perStream(was.alloc, was.alloc.areas.get(area) ?? 0))}`} |`),
  '',
  '## agentmem-stream\'s hottest functions (self time)',
  '',
  '| function | share |',
  '|---|---|',
  ...[...ours.self].sort((a, b) => b[1] - a[1]).slice(0, 20).map(([fn, t]) => `| \`${fn}\` | ${(t / ours.busy * 100).toFixed(1)}% |`),
  '',
  '## A relayed turn',
  '',
  `Scenario 3's load at 100 streams for ${seconds} s (turns relayed through the \`openai\` SDK from the OpenAI-compatible mock in this process: 10 tokens, the first 50–100 ms after the request, then 100 ms apart; each client starts its next turn when one ends), under \`--cpu-prof\`. agentmem-stream also makes the turn's memory-extraction request, through the same SDK; its SDK reaches the mock over node:http, the baseline's over the SDK's default fetch.`,
  '',
  '| server | turns | CPU µs per turn (profile) | process CPU µs per turn (user + system) |',
  '|---|---|---|---|',
  ...[['agentmem', relayedOurs], ...(was === null ? [] : [['agentmem before', was.relayed]]), ['baseline', relayedBase]]
    .map(([label, r]) => `| ${label} | ${fmtInt(r.streams)} | ${us(perStream(r, r.busy))} | ${us(perStream(r, r.processUs))} |`),
  '',
  '| area (agentmem) | µs per turn | share |',
  '|---|---|---|',
  ...[...relayedOurs.areas].sort((a, b) => b[1] - a[1]).map(([area, t]) => `| ${area} | ${us(perStream(relayedOurs, t))} | ${(t / relayedOurs.busy * 100).toFixed(1)}% |`),
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
