import t from 'tap'
import net from 'node:net'
import { startApp } from '../helpers/server.js'
import { until } from '../helpers/settle.js'
import { startUpstream } from '../helpers/upstream.js'

const resources = (kind: string): number => process.getActiveResourcesInfo().filter((r) => r === kind).length

t.test('an upstream sending garbage mid-stream ends it with upstream_error and releases it', async (t) => {
  const upstream = await startUpstream(t)
  upstream.script = { tokens: ['a', 'b', 'c'], garbageAfterTokens: 2, tokenDelayMs: 10 }
  const { stream, createAgent, app } = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'k', openaiBaseUrl: upstream.url })
  const client = stream('org-a', await createAgent('org-a'), { message: 'hi' })
  await client.ended
  t.same(client.types(), ['start', 'content', 'content', 'error'])
  t.match(client.last(), { code: 'upstream_error' })
  await until(() => app.streams().length === 0, 5000, 'every stream released')
})

t.test('1,000 clients that connect and vanish at once leave nothing behind', async (t) => {
  const { url, createAgent, token, app } = await startApp(t, { builtinTokenDelayMs: 500, streamMaxPerTenant: 5000 })
  const agentId = await createAgent('org-a')
  const baseline = { sockets: resources('TCPSocketWrap'), timers: resources('Timeout') }
  const { port } = new URL(url)
  const body = JSON.stringify({ message: 'a long enough message to keep the stream going for a while' })
  const head = `POST /api/v1/agents/${agentId}/chat/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer ${token('org-a')}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`
  const sockets = await Promise.all(Array.from({ length: 1000 }, async () => await new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1')
    socket.on('error', reject)
    socket.write(head + body)
    socket.once('data', () => resolve(socket))
  })))
  t.equal(app.streams().length, 1000, 'all streaming')
  for (const s of sockets) s.destroy()
  await until(() => app.streams().length === 0, 10000, 'every stream released')
  await until(() => resources('TCPSocketWrap') <= baseline.sockets && resources('Timeout') <= baseline.timers, 10000, `sockets ${resources('TCPSocketWrap')}/${baseline.sockets} and timers ${resources('Timeout')}/${baseline.timers} back to baseline`)
  const after = await fetch(`${url}/readyz`)
  t.equal(after.status, 200, 'still serving')
})
