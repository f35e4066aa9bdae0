import t from 'tap'
import { spawn } from 'node:child_process'
import net from 'node:net'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { createServer } from '../../lib/server.js'
import { ENV_VARS } from '../../lib/config.js'
import { StreamClient } from '../helpers/sse-client.js'

const CLI = fileURLToPath(new URL('../../lib/cli.ts', import.meta.url))

function runCli (args: string[], env: Record<string, string>): { child: ReturnType<typeof spawn>, output: () => string } {
  // Keep tap's loader settings, drop any of our own variables the machine may have set.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !(k in ENV_VARS)))
  const child = spawn(process.execPath, [...process.execArgv, CLI, ...args], {
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { output += d })
  child.stderr.setEncoding('utf8').on('data', (d: string) => { output += d })
  return { child, output: () => output }
}

t.test('dev mode on loopback: a demo agent and a signed token that works', async (t) => {
  const app = await createServer({ port: 0, databaseUrl: 'sqlite::memory:', builtinTokenDelayMs: 0 })
  const url = await app.listen()
  t.teardown(() => app.close())
  t.ok(app.dev, 'dev session prepared')
  const dev = app.dev as NonNullable<typeof app.dev>
  t.equal(dev.agent.organization_id, 'demo')
  const client = new StreamClient(`${url}/api/v1/agents/${dev.agent.id}/chat/stream`, {
    headers: { 'content-type': 'application/json', authorization: `Bearer ${dev.token}` },
    body: JSON.stringify({ message: 'hello' })
  })
  await client.ended
  t.equal(client.last()?.chunk_type, 'done')
  const anonymous = new StreamClient(`${url}/api/v1/agents/${dev.agent.id}/chat/stream`, { headers: { 'content-type': 'application/json' }, body: '{"message":"x"}' })
  await anonymous.ended
  t.equal(anonymous.status, 401, 'dev mode still requires the token')
})

t.test('without a key on a non-loopback host the server refuses to start', async (t) => {
  await t.rejects(createServer({ host: '0.0.0.0', databaseUrl: 'sqlite::memory:' }), { name: 'ConfigError', message: /not a loopback address/ })
})

t.test('npm start path: the CLI prints a curl line that streams, and exits cleanly on SIGTERM', async (t) => {
  const dir = t.testdir()
  const { child, output } = runCli(['serve'], { PORT: '0', DATABASE_URL: `sqlite:${dir}/nested/db.sqlite`, BUILTIN_TOKEN_DELAY_MS: '0' })
  while (!output().includes("-d '{")) {
    const [chunk] = await Promise.race([once(child.stdout as NodeJS.ReadableStream, 'data'), once(child, 'exit')])
    if (typeof chunk !== 'string' && chunk !== undefined) break
  }
  const text = output()
  t.match(text, /agentmem-stream listening on http:\/\/127\.0\.0\.1:\d+/)
  t.match(text, /llm: builtin \(builtin-echo\)\s+store: sqlite/)
  const url = /curl -N -X POST (\S+)/.exec(text)?.[1] as string
  const token = /Bearer ([^"]+)"/.exec(text)?.[1] as string
  const client = new StreamClient(url, { headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: '{"message": "Tell me a story about AI"}' })
  await client.ended
  t.equal(client.text(), 'You said: Tell me a story about AI')
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  t.equal(code, 0)
})

t.test('the CLI reports bad configuration and unknown commands', async (t) => {
  const bad = runCli(['serve'], { PORT: 'nope' })
  t.equal((await once(bad.child, 'exit'))[0], 1)
  t.match(bad.output(), /Invalid configuration: PORT must be integer/)
  const blocker = net.createServer().listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.teardown(() => blocker.close())
  const busy = runCli(['serve'], { PORT: String((blocker.address() as net.AddressInfo).port), DATABASE_URL: 'sqlite::memory:' })
  t.equal((await once(busy.child, 'exit'))[0], 1)
  t.match(busy.output(), /EADDRINUSE/)
  const unknown = runCli(['frobnicate'], {})
  t.equal((await once(unknown.child, 'exit'))[0], 2)
  t.match(unknown.output(), /Unknown command: frobnicate/)
})
