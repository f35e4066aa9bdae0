// node bench/per-token.mjs [path to a build's lib/index.js]: what one more token of a turn costs
// inside agentmem-stream, in process: promises created (async_hooks counts every one) and CPU,
// measured as the difference between a 2,020-token and a 20-token turn (the turn's fixed work
// cancels out). The client reads with node:http 'data' events, which make no promises of their
// own. Given the path of an older build, it measures that one: bench/PROFILE.md's before/after.
import { createHook } from 'node:async_hooks'
import http from 'node:http'
import { pathToFileURL } from 'node:url'
import { SECRET } from './servers/contract.mjs'
import { token } from './lib/harness.mjs'

let promises = 0
const hook = createHook({ init (_id, type) { if (type === 'PROMISE') promises++ } })

/** One stream read to its end; resolves with the number of events. */
function readStream (url, agent, words) {
  const body = JSON.stringify({ message: Array.from({ length: words }, (_, i) => `w${i}`).join(' ') })
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/api/v1/agents/${agent}/chat/stream`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
    }, (res) => {
      let events = 0
      res.setEncoding('utf8')
      res.on('data', (text) => { events += text.split('\n\n').length - 1 })
      res.on('end', () => resolve(events))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** `entry`: the build to measure, this checkout's by default. */
export async function perToken (entry = new URL('../dist/lib/index.js', import.meta.url)) {
  const { createServer } = await import(entry.href)
  const app = await createServer({ port: 0, host: '127.0.0.1', jwtSecret: SECRET, databaseUrl: 'sqlite::memory:', builtinTokenDelayMs: 0, logLevel: 'silent' })
  const url = await app.listen()
  const res = await fetch(`${url}/api/v1/agents`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'per-token' }) })
  const agent = (await res.json()).data.id
  const measure = async (words) => {
    let best = { promises: Infinity, cpuUs: Infinity }
    for (let i = 0; i < 7; i++) {
      promises = 0
      const cpu = process.cpuUsage()
      hook.enable()
      await readStream(url, agent, words)
      hook.disable()
      const used = process.cpuUsage(cpu)
      best = { promises: Math.min(best.promises, promises), cpuUs: Math.min(best.cpuUs, used.user + used.system) }
    }
    return best
  }
  for (let i = 0; i < 20; i++) await readStream(url, agent, 200) // warm-up: JIT, statement caches
  const short = await measure(18)
  const long = await measure(2018)
  await app.close()
  return { promisesPerToken: (long.promises - short.promises) / 2000, cpuUsPerToken: (long.cpuUs - short.cpuUs) / 2000, promisesPerTurn: short.promises }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await perToken(process.argv[2] === undefined ? undefined : pathToFileURL(process.argv[2]))))
}
