import t from 'tap'
import { spawn } from 'node:child_process'
import net from 'node:net'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { createServer } from '../../lib/server.js'
import { ENV_VARS } from '../../lib/config.js'
import { readFileSync } from 'node:fs'
import { generateKeyPairSync } from 'node:crypto'
import { createAuthenticator } from '../../lib/auth/jwt.js'
import { SECRET } from '../helpers/server.js'
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
  t.match(text, /agentmem-stream \d+\.\d+\.\d+ listening on http:\/\/127\.0\.0\.1:\d+/)
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
  t.match(unknown.output(), /Unknown command: frobnicate[\s\S]*Usage: agentmem-stream/)
})

t.test('CLI help, version and token minting', async (t) => {
  const run = async (args: string[], env: Record<string, string> = {}): Promise<[number, string]> => {
    const cli = runCli(args, env)
    const [code] = await once(cli.child, 'exit') as [number]
    return [code, cli.output()]
  }
  for (const flag of ['--help', '-h', 'help']) {
    const [code, out] = await run([flag])
    t.equal(code, 0)
    t.match(out, /agentmem-stream <command>[\s\S]*token --org ID --sub USER/)
  }
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  t.equal((await run(['--version']))[1].trim(), pkg.version)
  t.equal((await run(['-v']))[1].trim(), pkg.version)

  const [code, out] = await run(['token', '--org', 'acme', '--sub', 'u-7', '--roles', 'admin,user', '--ttl', '2h'], { JWT_SECRET: SECRET, JWT_ISSUER: 'me' })
  t.equal(code, 0)
  const claims = createAuthenticator({ secret: SECRET, issuer: 'me' })(`Bearer ${out.trim()}`)
  t.same(claims, { userId: 'u-7', orgId: 'acme', roles: ['admin', 'user'], admin: true }, 'the minted token passes the server\'s own verification')
  const payload = JSON.parse(Buffer.from(out.trim().split('.')[1] as string, 'base64url').toString()) as { exp: number, iat: number }
  t.equal(payload.exp - payload.iat, 7200)
  const defaults = JSON.parse(Buffer.from((await run(['token', '--org', 'a', '--sub', 'b'], { JWT_SECRET: SECRET }))[1].trim().split('.')[1] as string, 'base64url').toString()) as { exp: number, iat: number, roles: string[] }
  t.equal(defaults.exp - defaults.iat, 86400, 'ttl defaults to 24h')
  t.same(defaults.roles, [])

  const dir = t.testdir({ 'key.pem': generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString() })
  const failures: Array<[string[], Record<string, string>, RegExp]> = [
    [['token', '--org', 'a', '--sub', 'b'], {}, /No key configured: set JWT_SECRET/],
    [['token', '--org', 'a', '--sub', 'b'], { JWT_PUBLIC_KEY: `${dir}/key.pem` }, /JWT_PUBLIC_KEY can only verify/],
    [['token', '--org', 'a'], { JWT_SECRET: SECRET }, /token needs --org and --sub/],
    [['token', '--org', 'a', '--sub', 'b', '--ttl', '3 weeks'], { JWT_SECRET: SECRET }, /ttl must look like 30m, 24h or 7d/],
    [['token', '--frob'], { JWT_SECRET: SECRET }, /Unknown option '--frob'/]
  ]
  for (const [args, env, message] of failures) {
    const [failCode, failOut] = await run(args, env)
    t.equal(failCode, 1, args.join(' '))
    t.match(failOut, message)
  }
  for (const unit of ['30s', '15m', '7d']) t.ok((await run(['token', '--org', 'a', '--sub', 'b', '--ttl', unit], { JWT_SECRET: SECRET }))[0] === 0, unit)
})
