// node bench/profile.mjs [seconds]: agentmem-stream under scenario 1's load with --cpu-prof,
// then the top self-time functions. The .cpuprofile lands in bench/profiles/ (git-ignored)
// for Chrome DevTools.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, readdirSync, rmSync } from 'node:fs'
import autocannon from 'autocannon'
import { headers } from './lib/harness.mjs'
import { SECRET } from './servers/contract.mjs'

const dir = new URL('./profiles/', import.meta.url).pathname
rmSync(dir, { recursive: true, force: true })
const child = fork(new URL('./servers/agentmem.mjs', import.meta.url), [], {
  execArgv: ['--cpu-prof', `--cpu-prof-dir=${dir}`],
  env: { PATH: process.env.PATH, PORT: '0', JWT_SECRET: SECRET, DATABASE_URL: 'sqlite::memory:', BUILTIN_TOKEN_DELAY_MS: '0', STREAM_MAX_PER_TENANT: '100000' },
  stdio: ['ignore', 'inherit', 'inherit', 'ipc']
})
const [msg] = await once(child, 'message')
const res = await fetch(`http://127.0.0.1:${msg.port}/api/v1/agents`, { method: 'POST', headers, body: JSON.stringify({ name: 'profile' }) })
const agent = (await res.json()).data.id
const result = await autocannon({
  url: `http://127.0.0.1:${msg.port}`,
  connections: 100,
  duration: Number(process.argv[2] ?? 8),
  requests: [{ method: 'POST', path: `/api/v1/agents/${agent}/chat/stream`, headers, body: JSON.stringify({ message: Array.from({ length: 18 }, (_, i) => `w${i}`).join(' ') }) }]
})
console.log(`streams/s ${Math.round(result.requests.average)}, p99 ${result.latency.p99} ms`)
child.send({ type: 'exit' })
await once(child, 'exit')

const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
const profile = JSON.parse(readFileSync(dir + file, 'utf8'))
const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
const self = new Map()
let total = 0
profile.samples.forEach((id, i) => {
  const { functionName, url, lineNumber } = nodes.get(id).callFrame
  const key = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`
  const dt = profile.timeDeltas[i] ?? 0
  self.set(key, (self.get(key) ?? 0) + dt)
  total += dt
})
for (const [key, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${(t / total * 100).toFixed(1).padStart(5)}%  ${key}`)
