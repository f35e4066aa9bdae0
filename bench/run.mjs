// npm run bench [-- <scenario>...] [-- --smoke] [-- --out FILE]
// Runs each scenario for agentmem-stream, the raw node:http baseline and the peers, each
// server in its own process, and writes bench/RESULTS.md (ratios to the baseline of the same run).
import http from 'node:http'
import os from 'node:os'
import { writeFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import { SERVERS, WITH_LIMIT, headers, now, openIdleStreams, percentile, processCpuMs, runStream, startMock, startServer, stats, streamPath, upstreamEnv } from './lib/harness.mjs'

const args = process.argv.slice(2)
const smoke = args.includes('--smoke')
const outAt = args.indexOf('--out')
const out = outAt === -1 ? new URL('./RESULTS.md', import.meta.url) : args[outAt + 1]
const only = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--out')
const RUNS = smoke ? 1 : 3
/** Scenarios 1 and 7, whose ratios are targets: more rounds, each a pair (or set) run back to back. */
const PAIRED_RUNS = smoke ? 1 : 5
const size = (full, small) => (smoke ? small : full)

const fmt = (n, digits = 0) => Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
const triple = (s, digits = 0) => `${fmt(s.min, digits)} / **${fmt(s.median, digits)}** / ${fmt(s.max, digits)}`
const ratio = (value, base) => (base > 0 ? `${fmt(value / base, 2)}×` : 'n/a')
/**
 * The ratio round by round: each round's value over the base measured next to it, median (min–max).
 * The machine's speed drifts between rounds, and a slow spell slows both runs of a round.
 */
const roundRatio = (values, bases) => {
  const s = stats(values.map((v, i) => v / bases[i]))
  return `${fmt(s.median, 2)}× (${fmt(s.min, 2)}–${fmt(s.max, 2)})`
}
const log = (...a) => console.error('[bench]', ...a)

const WORDS18 = Array.from({ length: 18 }, (_, i) => `w${i}`).join(' ')

/** Scenario 1: 100 connections, each request one full stream of 20 content events. */
async function shortStreams () {
  const perServer = new Map(WITH_LIMIT.map((name) => [name, { rps: [], p50: [], p99: [], cpu: [], bad: 0 }]))
  // Round by round, every server in turn: the machine's speed drifts from minute to minute, and
  // a slow spell then costs each server one run rather than all of one server's.
  for (let r = 0; r < PAIRED_RUNS; r++) {
    for (const name of WITH_LIMIT) {
      const perRun = perServer.get(name)
      const server = await startServer(name)
      const before = await server.stats()
      const result = await loadAcross([server], size(100, 10), size(10, 1))
      const after = await server.stats()
      await server.stop()
      perRun.rps.push(result.rps)
      perRun.p50.push(result.p50)
      perRun.p99.push(result.p99)
      perRun.cpu.push((after.cpuMs - before.cpuMs) * 1000 / result.total)
      perRun.bad += result.bad
      log('short', name, Math.round(result.rps), 'streams/s')
    }
  }
  const rows = [...perServer].map(([name, perRun]) => ({ name, rps: stats(perRun.rps), p50: stats(perRun.p50), p99: stats(perRun.p99), cpu: stats(perRun.cpu), cpuRuns: perRun.cpu, bad: perRun.bad }))
  const base = rows.find((r) => r.name === 'baseline').rps.median
  const limit = rows.find((r) => r.name === 'limit')
  return [
    `## 1. Short streams at load\n\n${size(100, 10)} connections for ${size(10, 1)} s per run, each request a full stream of 20 content events (agentmem-stream also sends its two memory_update events). min / **median** / max over ${PAIRED_RUNS} runs, the servers in turn in each round; every body checked to end with \`done\`. \`limit\` is the contract limit (\`bench/servers/limit.mjs\`): node:http with the same JWT check and body validation, writing agentmem-stream's own bytes for this turn (recorded from a real run at the start), nothing else. Server CPU is the server process's user + system time over the load, per stream completed. \`CPU vs limit\` divides the medians; \`round by round\` divides each run's CPU by the limit's of the same round (median, min–max of the ${PAIRED_RUNS}): how far the machine's drift moves the ratio.\n`,
    '| server | streams/s | vs baseline | p50 ms | p99 ms | server CPU µs per stream | CPU vs limit | round by round | failed or incomplete |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${triple(r.rps)} | ${ratio(r.rps.median, base)} | ${triple(r.p50, 1)} | ${triple(r.p99, 1)} | ${triple(r.cpu)} | ${ratio(r.cpu.median, limit.cpu.median)} | ${roundRatio(r.cpuRuns, limit.cpuRuns)} | ${r.bad} |`)
  ].join('\n')
}

/** How the servers' SDKs reach the mock, said wherever a server relays it. */
const SDK_FETCH = 'agentmem-stream gives the SDK its own fetch, node:http for a plain-HTTP upstream like this mock; the other servers use the SDK\'s default, Node\'s fetch'

/** Scenario 2: one long stream from a 0-delay upstream, every server relaying it through the openai SDK. */
async function longStream () {
  const tokens = size(200_000, 2_000)
  const rows = []
  for (const name of SERVERS) {
    const rates = []
    const cpuPerEvent = []
    for (let r = 0; r < RUNS; r++) {
      const mock = await startMock()
      mock.tokens = tokens
      const server = await startServer(name, { ...upstreamEnv(mock), STREAM_REPLAY_MAX_BYTES: String(1 << 20) })
      const before = await server.stats()
      const t0 = now()
      const result = await runStream(server, { message: `long ${r}` })
      const seconds = (now() - t0) / 1000
      const after = await server.stats()
      await server.stop()
      mock.close()
      rates.push(result.events / seconds)
      cpuPerEvent.push((after.cpuMs - before.cpuMs) * 1000 / result.events)
      log('long', name, Math.round(result.events / seconds), 'events/s')
    }
    rows.push({ name, rate: stats(rates), cpu: stats(cpuPerEvent) })
  }
  const base = rows.find((r) => r.name === 'baseline').rate.median
  return [
    `## 2. Long stream throughput\n\nOne stream of ${fmt(tokens)} tokens from a 0-delay OpenAI-compatible mock, which every server reads through the \`openai\` SDK and relays (${SDK_FETCH}; the mock runs in the harness process and shares the machine's two cores). Server CPU is the server process's own.\n`,
    '| server | events/s | vs baseline | server CPU µs per event |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${triple(r.rate)} | ${ratio(r.rate.median, base)} | ${triple(r.cpu, 2)} |`)
  ].join('\n')
}

/**
 * Scenario 3: added latency between the upstream's first token and the client's first content
 * event, with `concurrency` streams open all the time (each client starts its next stream when
 * one ends, over a kept-alive connection). First tokens come 50–100 ms after each request, so
 * they are spread as real ones are, and every later token 100 ms apart.
 */
async function timeToFirstToken () {
  const levels = smoke ? [1, 5] : [1, 100, 1000]
  const seconds = size(8, 1.5)
  const warmupMs = size(2000, 200)
  const rows = []
  for (const name of SERVERS) {
    for (const concurrency of levels) {
      const runs = []
      for (let r = 0; r < RUNS; r++) runs.push(await ttftRun(name, concurrency, seconds, warmupMs))
      const row = {
        name,
        concurrency,
        p50: stats(runs.map((x) => x.p50)),
        p99: stats(runs.map((x) => x.p99)),
        max: Math.max(...runs.map((x) => x.max)),
        samples: runs.reduce((n, x) => n + x.samples, 0),
        failed: runs.reduce((n, x) => n + x.failed, 0),
        loop: stats(runs.map((x) => x.loop)).median
      }
      rows.push(row)
      log('ttft', name, concurrency, 'p99 median', row.p99.median.toFixed(2), 'ms')
    }
  }
  const baseP99 = (c) => rows.find((r) => r.name === 'baseline' && r.concurrency === c).p99.median
  return [
    `## 3. Time-to-first-token overhead\n\nEvery server relays a mock upstream through the \`openai\` SDK (${SDK_FETCH}). N clients each run streams back to back over a kept-alive connection for ${seconds} s (the first ${warmupMs / 1000} s are not counted); the mock sends the first token 50–100 ms after the request (uniformly random), then 9 more 100 ms apart. The figure is (client sees the first content event) − (mock wrote its first token), both clocks in the harness process, so it includes the client-side parse and both loopback hops. Clients start spread over the first second, so streams do not run in waves. p50 and p99 are min / **median** / max over ${RUNS} runs (a fresh server and mock each); max and samples over all runs. The last column is how late the server's own event loop ran (a 1 ms-resolution monitor, median over the runs): on two cores shared with the harness, part of the tail is the server waiting for a core.\n`,
    '| server | concurrent streams | p50 ms | p99 ms | p99 vs baseline | max ms | samples | failed or incomplete | server event-loop delay p99 ms |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${fmt(r.concurrency)} | ${triple(r.p50, 2)} | ${triple(r.p99, 2)} | ${ratio(r.p99.median, baseP99(r.concurrency))} | ${fmt(r.max, 2)} | ${fmt(r.samples)} | ${r.failed} | ${fmt(r.loop, 1)} |`)
  ].join('\n')
}

/** One scenario-3 run: `concurrency` clients for `seconds` against a fresh server and mock. */
async function ttftRun (name, concurrency, seconds, warmupMs) {
  const mock = await startMock()
  Object.assign(mock, { tokens: 10, tokenDelayMs: 100, firstTokenDelayMs: 50, firstTokenJitterMs: 50 })
  const server = await startServer(name, upstreamEnv(mock))
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  const added = []
  let failed = 0
  let n = 0
  await server.stats() // resets the server's event-loop delay histogram
  const t0 = now()
  const client = async (i) => {
    // Clients start spread over one stream's length (about 1 s), as independent users would;
    // started together they would stay in waves, and every wave's opens would queue the first tokens.
    await sleep(i * 1000 / concurrency)
    while (now() - t0 < seconds * 1000) {
      const nonce = `ttft-${i}-${n++}`
      const startedAt = now()
      const res = await runStream(server, { message: nonce }, { agent })
      if (!res.done) failed++
      else if (startedAt - t0 >= warmupMs) added.push(res.firstContentAt - mock.firstTokenAt.get(nonce))
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, i) => client(i)))
  const { loopDelayMs } = await server.stats()
  agent.destroy()
  await server.stop()
  mock.close()
  return { p50: percentile(added, 50), p99: percentile(added, 99), max: Math.max(...added), samples: added.length, failed, loop: loopDelayMs.p99 }
}

/** Scenario 4: many idle open streams; memory per stream after GC, and keep-alive CPU. */
async function idleCapacity () {
  const count = size(10_000, 50)
  const perServer = new Map(WITH_LIMIT.map((name) => [name, { rss: [], heap: [], cpu: [] }]))
  // Rounds alternate the servers: the machine's speed drifts over minutes, and a keep-alive
  // second's CPU (10,000 writes) moves with it more than the servers differ.
  for (let r = 0; r < RUNS; r++) {
    for (const name of WITH_LIMIT) {
      const server = await startServer(name, { BUILTIN_TOKEN_DELAY_MS: '600000', STREAM_IDLE_TIMEOUT_MS: '3600000', STREAM_MAX_DURATION_MS: '3600000', STREAM_KEEPALIVE_MS: '1000', KEEPALIVE_MS: '1000' })
      const before = await server.stats()
      const sockets = await openIdleStreams(server, count)
      await sleep(500)
      const held = await server.stats()
      // CPU read without a forced GC at either end: a full GC of 10,000 streams' heap would be counted as keep-alive work.
      const from = await server.cpuMs()
      await sleep(size(5000, 1000))
      const to = await server.cpuMs()
      for (const s of sockets) s.destroy()
      await server.stop()
      const run = perServer.get(name)
      run.rss.push((held.rss - before.rss) / count)
      run.heap.push((held.heapUsed - before.heapUsed) / count)
      run.cpu.push((to - from) / size(5, 1))
      log('idle', name, Math.round(run.rss.at(-1)), 'B RSS per stream')
    }
  }
  const rows = WITH_LIMIT.map((name) => {
    const run = perServer.get(name)
    return { name, rss: stats(run.rss), heap: stats(run.heap), cpu: stats(run.cpu) }
  })
  const base = rows.find((r) => r.name === 'baseline')
  const limit = rows.find((r) => r.name === 'limit')
  return [
    `## 4. Idle capacity\n\n${fmt(count)} streams held open after their first content event (source addresses spread over 127.0.0.2–9), measured after a forced GC; a keep-alive comment every 1 s from every server (each through its own heartbeat; the baseline and Hono, which have none, with a timer per stream), CPU over the next ${size(5, 1)} s (read with no forced GC in the window). min / **median** / max over ${RUNS} rounds, each round every server in turn.\n`,
    '| server | RSS bytes per stream | vs baseline | vs limit | heap bytes per stream | server CPU ms per second | CPU vs baseline |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${triple(r.rss)} | ${ratio(r.rss.median, base.rss.median)} | ${ratio(r.rss.median, limit.rss.median)} | ${triple(r.heap)} | ${triple(r.cpu, 1)} | ${ratio(r.cpu.median, base.cpu.median)} |`)
  ].join('\n')
}

const REPLY_WORDS = 'The quick brown fox jumps over the lazy dog while the agent remembers that the user likes green tea and lives in Paris.'.split(' ')

/**
 * Scenario 5: gzip vs identity for a typical reply (300 tokens of prose), for the servers that can
 * compress an event stream event by event: agentmem-stream, the baseline and Express (the
 * `compression` middleware), all with the same zlib settings.
 */
async function compression () {
  const message = Array.from({ length: 298 }, (_, i) => REPLY_WORDS[i % REPLY_WORDS.length]).join(' ')
  const streams = size(200, 10)
  const idle = size(1000, 20)
  const rows = []
  for (const name of ['agentmem', 'baseline', 'express']) {
    for (const encoding of ['identity', 'gzip']) {
      const server = await startServer(name, { GZIP: 'on' })
      const before = await server.stats()
      let bytes = 0
      for (let i = 0; i < streams; i += 10) {
        const batch = await Promise.all(Array.from({ length: 10 }, () => runStream(server, { message }, { headers: { 'accept-encoding': encoding }, raw: true })))
        for (const r of batch) bytes += r.bytes
      }
      const after = await server.stats()
      await server.stop()
      // Memory of the compressor: idle streams held open, after a forced GC.
      const holder = await startServer(name, { GZIP: 'on', BUILTIN_TOKEN_DELAY_MS: '600000', STREAM_IDLE_TIMEOUT_MS: '3600000' })
      const empty = await holder.stats()
      const sockets = await openIdleStreams(holder, idle, encoding === 'gzip' ? 'Accept-Encoding: gzip\r\n' : '')
      await sleep(300)
      const held = await holder.stats()
      for (const s of sockets) s.destroy()
      await holder.stop()
      rows.push({ name, encoding, bytes: bytes / streams, cpu: (after.cpuMs - before.cpuMs) / streams, rss: (held.rss - empty.rss) / idle })
      log('compression', name, encoding, Math.round(bytes / streams), 'B per stream')
    }
  }
  const find = (name, encoding) => rows.find((r) => r.name === name && r.encoding === encoding)
  return [
    `## 5. Compression\n\n${streams} streams of a 300-token reply, 10 at a time; body bytes on the wire per stream (headers excluded) and server CPU per stream. gzip uses windowBits 10 / memLevel 3 and a sync flush after every event, in agentmem-stream, the baseline and Express (its \`compression\` middleware, with \`res.flush()\` after every event). Fastify and Hono are not in the table: \`@fastify/sse\` writes to the raw response, past \`@fastify/compress\`, and Hono's \`compress\` middleware leaves \`text/event-stream\` uncompressed by design (it cannot flush per event). Memory: ${fmt(idle)} idle streams held open with and without gzip, RSS per stream after a forced GC (the difference is the compressor's state).\n`,
    '| server | encoding | bytes per stream | vs identity | server CPU ms per stream | CPU vs baseline | RSS bytes per idle stream |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${r.encoding} | ${fmt(r.bytes)} | ${ratio(r.bytes, find(r.name, 'identity').bytes)} | ${fmt(r.cpu, 2)} | ${ratio(r.cpu, find('baseline', r.encoding).cpu)} | ${fmt(r.rss)} |`)
  ].join('\n')
}

/** Scenario 6: readers at 1 KB/s against a fast upstream; server memory must stay bounded. */
async function slowConsumers () {
  const readers = size(100, 5)
  const seconds = size(10, 2)
  const rows = []
  // agentmem-stream once more with a live replay budget of 16 MiB for all its streams together.
  const budget = 16 * 2 ** 20
  const runs = [...SERVERS.map((name) => ({ name, label: name, env: {} })),
    { name: 'agentmem', label: 'agentmem, live budget 16 MiB', env: { STREAM_LIVE_REPLAY_MAX_BYTES: String(budget) } }]
  for (const { name, label, env } of runs) {
    const mock = await startMock()
    // No detach grace: when the readers hang up at the end, their streams should stop, not run on for 30 s.
    const server = await startServer(name, { ...upstreamEnv(mock), STREAM_DRAIN_TIMEOUT_MS: '600000', STREAM_DETACH_GRACE_MS: '0', ...env })
    // One short stream first: Node loads fetch (undici) on first use, megabytes that are no reader's.
    mock.tokens = 5
    await runStream(server, { message: 'warm-up' })
    mock.tokens = 10_000_000
    const before = await server.stats()
    const sockets = []
    const streams = Array.from({ length: readers }, (_, i) => runStream(server, { message: `slow ${i}`, tokens: 10_000_000 }, {
      raw: true,
      ignoreErrors: true,
      onRequest: (req) => sockets.push(req),
      onResponse: (res) => {
        // Read 1 KiB per second: pause, and resume for one chunk every second.
        res.pause()
        const timer = setInterval(() => { res.read(1024) }, 1000)
        res.on('close', () => clearInterval(timer))
      }
    }))
    await sleep(seconds * 1000)
    const during = await server.stats()
    for (const req of sockets) req.destroy()
    await Promise.all(streams)
    await server.stop()
    mock.close()
    rows.push({ name, label, growth: (during.rss - before.rss) / readers, heap: (during.heapUsed - before.heapUsed) / readers })
    log('slow', label, Math.round((during.rss - before.rss) / readers), 'B RSS per reader')
  }
  const base = rows.find((r) => r.name === 'baseline')
  return [
    `## 6. Slow consumers\n\n${readers} readers reading 1 KiB/s for ${seconds} s while the upstream could send 10 million tokens (every server relays the mock through the \`openai\` SDK; ${SDK_FETCH}). Growth of the server after a forced GC, per reader. Every server holds the \`openai\` SDK's fetch buffers and one socket buffer (16 KiB) per reader (the baseline's row); agentmem-stream also keeps each stream's replay log for resume, bounded by \`STREAM_REPLAY_MAX_BYTES\` (1 MiB), so its bound is the baseline's growth plus 1 MiB. The last row runs agentmem-stream with \`STREAM_LIVE_REPLAY_MAX_BYTES\` at ${fmt(budget / 2 ** 20)} MiB for all live logs together (${fmt(budget / readers)} bytes per reader here), the bound that holds however many long streams are open; compare its heap growth with the first row's. The kernel's socket buffers are not in RSS.\n`,
    '| server | RSS growth per reader (bytes) | above the baseline (bytes) | heap growth per reader (bytes) |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.label} | ${fmt(r.growth)} | ${fmt(r.growth - base.growth)} | ${fmt(r.heap)} |`)
  ].join('\n')
}

/** autocannon on several servers at once, `connections` spread over them; sums throughput, keeps the worst p50 and p99. */
async function loadAcross (servers, connections, duration) {
  let bad = 0
  const results = await Promise.all(servers.map((server, i) => autocannon({
    url: `http://127.0.0.1:${server.port}`,
    connections: Math.floor(connections / servers.length) + (i < connections % servers.length ? 1 : 0),
    duration,
    requests: [{
      method: 'POST',
      path: streamPath(server),
      headers,
      body: JSON.stringify({ message: WORDS18 }),
      onResponse: (status, body) => { if (status !== 200 || !body.includes('"chunk_type":"done"')) bad++ }
    }]
  })))
  return {
    rps: results.reduce((sum, r) => sum + r.requests.average, 0),
    total: results.reduce((sum, r) => sum + r.requests.total, 0),
    p50: Math.max(...results.map((r) => r.latency.p50)),
    p99: Math.max(...results.map((r) => r.latency.p99)),
    bad: bad + results.reduce((sum, r) => sum + r.errors + r.non2xx, 0)
  }
}

/** Deletes a run's Redis keys (its streams' logs would otherwise stay until they expire). */
async function dropKeys (redisUrl, prefix) {
  const { Redis } = await import('ioredis')
  const redis = new Redis(redisUrl)
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    if (keys.length > 0) await redis.unlink(...keys)
    cursor = next
  } while (cursor !== '0')
  redis.disconnect()
}

/** Scenario 7: the scale-out set-up (PostgreSQL + Redis), one instance and three, beside the embedded default. */
async function cluster () {
  const pg = (await import('pg')).default
  const pgUrl = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
  const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
  const variants = [
    { label: '1 instance, SQLite, in-process limits (default)', instances: 1, shared: false },
    { label: '1 instance, PostgreSQL + Redis', instances: 1, shared: true },
    { label: '3 instances, PostgreSQL + Redis', instances: 3, shared: true }
  ]
  const perVariant = variants.map(() => ({ rps: [], p99: [], cpu: [], bad: 0 }))
  // Round by round, every set-up in turn (see scenario 1).
  for (let r = 0; r < PAIRED_RUNS; r++) {
    for (const [v, variant] of variants.entries()) {
      const perRun = perVariant[v]
      const schema = `bench_${Math.random().toString(36).slice(2, 10)}`
      const admin = new pg.Client({ connectionString: pgUrl })
      await admin.connect()
      await admin.query(`CREATE SCHEMA ${schema}`)
      const url = new URL(pgUrl)
      url.searchParams.set('options', `-c search_path=${schema}`)
      const env = variant.shared ? { DATABASE_URL: url.toString(), REDIS_URL: redisUrl, REDIS_KEY_PREFIX: `${schema}:` } : {}
      const servers = []
      for (let i = 0; i < variant.instances; i++) servers.push(await startServer('agentmem', env))
      // CPU of the whole set-up: the servers, and PostgreSQL's and Redis's processes (idle for the SQLite default).
      const cpu = async () => (await Promise.all(servers.map((s) => s.stats()))).reduce((sum, s) => sum + s.cpuMs, 0) + processCpuMs(['postgres', 'redis-server'])
      const before = await cpu()
      const result = await loadAcross(servers, size(100, 10), size(10, 1))
      perRun.cpu.push((await cpu() - before) * 1000 / result.total)
      for (const server of servers) await server.stop()
      await admin.query(`DROP SCHEMA ${schema} CASCADE`)
      await admin.end()
      if (variant.shared) await dropKeys(redisUrl, `${schema}:`)
      perRun.rps.push(result.rps)
      perRun.p99.push(result.p99)
      perRun.bad += result.bad
      log('cluster', variant.label, Math.round(result.rps), 'streams/s')
    }
  }
  const rows = variants.map(({ label }, v) => ({ label, rps: stats(perVariant[v].rps), p99: stats(perVariant[v].p99), cpu: stats(perVariant[v].cpu), cpuRuns: perVariant[v].cpu, bad: perVariant[v].bad }))
  const base = rows[1].rps.median
  const embedded = rows[0]
  return [
    `## 7. Several instances\n\nScenario 1's load (${size(100, 10)} connections for ${size(10, 1)} s per run, spread evenly over the instances) against the scale-out set-up: agents and messages in one PostgreSQL, limits, replay logs and cancel in one Redis, all on this one machine. Throughput summed over the instances, p99 the worst instance's. CPU per turn is the whole set-up's: every server process plus every PostgreSQL and Redis process (read from /proc), over the streams completed. min / **median** / max over ${PAIRED_RUNS} runs, the set-ups in turn in each round; \`round by round\` divides each run's CPU by the SQLite default's of the same round (median, min–max).\n`,
    '| set-up | streams/s | vs 1 instance on PostgreSQL + Redis | p99 ms | CPU µs per turn (servers + PostgreSQL + Redis) | CPU vs the SQLite default | round by round | failed or incomplete |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.label} | ${triple(r.rps)} | ${ratio(r.rps.median, base)} | ${triple(r.p99, 1)} | ${triple(r.cpu)} | ${ratio(r.cpu.median, embedded.cpu.median)} | ${roundRatio(r.cpuRuns, embedded.cpuRuns)} | ${r.bad} |`)
  ].join('\n')
}

/**
 * Scenario 8: many clients, each running streams back to back on one kept-alive connection (the
 * case HEADERS_TIMEOUT_MS is about: a short headers timeout made requests on kept-alive
 * connections wait under load). Scenario 1's request; autocannon keeps every connection alive.
 */
async function keptAlive () {
  const connections = size(1000, 20)
  const seconds = size(10, 1)
  const rows = []
  for (const name of WITH_LIMIT) {
    const server = await startServer(name)
    const before = await server.stats()
    const result = await loadAcross([server], connections, seconds)
    const after = await server.stats()
    await server.stop()
    rows.push({ name, ...result, cpu: (after.cpuMs - before.cpuMs) * 1000 / result.total })
    log('kept-alive', name, Math.round(result.rps), 'streams/s')
  }
  const base = rows.find((r) => r.name === 'baseline').rps
  return [
    `## 8. Kept-alive clients\n\n${fmt(connections)} clients, each running scenario 1's stream back to back on one kept-alive connection, for ${seconds} s (one run). The last column counts what autocannon reports as errors (at this many connections, request timeouts: a response it waited for past its 10 s timeout) and any response that was not a 200 or whose body did not end with \`done\`.\n`,
    '| server | streams/s | vs baseline | p50 ms | p99 ms | server CPU µs per stream | failed or incomplete |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${fmt(r.rps)} | ${ratio(r.rps, base)} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ${fmt(r.cpu)} | ${r.bad} |`)
  ].join('\n')
}

/** One capacity trial: `count` streams paced by the mock, every gap between two content events at the client. */
async function pacedTrial (name, count, tokens) {
  const mock = await startMock()
  Object.assign(mock, { tokens, tokenDelayMs: 33, firstTokenDelayMs: 0, firstTokenJitterMs: 0 })
  const server = await startServer(name, upstreamEnv(mock))
  const gaps = []
  let failed = 0
  await Promise.all(Array.from({ length: count }, async (_, i) => {
    // Spread over the first second, as independent users arrive.
    await sleep(i * 1000 / count)
    let last = 0
    const res = await runStream(server, { message: `paced-${i}` }, {
      localAddress: `127.0.0.${2 + (i % 8)}`,
      onData: () => {
        const at = now()
        if (last !== 0) gaps.push(at - last)
        last = at
      }
    })
    if (!res.done) failed++
  }))
  await server.stop()
  mock.close()
  return { p99: percentile(gaps, 99), failed }
}

/**
 * Scenario 9: realistic capacity. Streams paced at 30 tokens/s (a real model's pace, one 5-character
 * token every 33 ms) for 20 s each, relayed from the mock through the openai SDK; the largest
 * number of concurrent streams whose p99 gap between two arrivals at the client stays under 50 ms.
 */
async function capacity () {
  const tokens = size(600, 30)
  const ladder = smoke ? [5, 10] : [250, 500, 1000, 2000, 4000]
  const rows = []
  for (const name of WITH_LIMIT.filter((n) => n !== 'limit')) {
    let best = null
    let over = null
    for (const count of ladder) {
      const trial = await pacedTrial(name, count, tokens)
      log('capacity', name, count, 'p99 gap', trial.p99.toFixed(1), 'ms', trial.failed, 'failed')
      if (trial.p99 >= 50 || trial.failed > 0) {
        over = { count, ...trial }
        break
      }
      best = { count, ...trial }
    }
    rows.push({ name, best, over })
  }
  return [
    `## 9. Realistic capacity\n\nStreams paced at 30 tokens/s (the mock sends one token every 33 ms, ${tokens} per stream, so ${fmt(tokens * 0.033)} s each), every server relaying it through the \`openai\` SDK (${SDK_FETCH}); N streams started over one second. The figure is the largest N on the ladder ${ladder.join(', ')} whose p99 gap between two arrivals of a stream at the client stays under 50 ms with every stream complete, and the first N that did not (one run each; the harness reads every stream in one process, so its own lag is part of the gap).\n`,
    '| server | largest N under 50 ms | its p99 gap ms | first N over | its p99 gap ms |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${r.best === null ? '–' : fmt(r.best.count)} | ${r.best === null ? '–' : fmt(r.best.p99, 1)} | ${r.over === null ? '(none on the ladder)' : fmt(r.over.count)} | ${r.over === null ? '–' : `${fmt(r.over.p99, 1)}${r.over.failed > 0 ? ` (${r.over.failed} incomplete)` : ''}`} |`)
  ].join('\n')
}

const SCENARIOS = { short: shortStreams, long: longStream, ttft: timeToFirstToken, idle: idleCapacity, compression, slow: slowConsumers, cluster, 'kept-alive': keptAlive, capacity }

const chosen = only.length === 0 ? Object.keys(SCENARIOS) : only
const header = [
  '# Benchmark results',
  '',
  `Produced by \`npm run bench${args.length > 0 ? ` -- ${args.filter((a) => a !== out).join(' ')}` : ''}\` on ${new Date().toISOString().slice(0, 10)}.`,
  `Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; Node ${process.version}; ${os.platform()} ${os.release()}.`,
  'Every server runs in its own process on 127.0.0.1; load comes from the harness process on the same machine. Absolute numbers drift on shared machines: compare ratios within one run.',
  ''
]
const sections = []
for (const key of chosen) {
  if (SCENARIOS[key] === undefined) throw new Error(`Unknown scenario ${key}; choose from ${Object.keys(SCENARIOS).join(', ')}`)
  log('scenario', key)
  sections.push(await SCENARIOS[key]())
  // Written after every scenario, so a long run interrupted keeps what it measured.
  writeFileSync(out, [...header, ...sections].join('\n\n') + '\n')
}
log('wrote', String(out))
