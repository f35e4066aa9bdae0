// node bench/sdk-fetch.mjs: what one openai SDK request costs in process (client and mock CPU
// together, one request at a time), with the SDK's default fetch and with agentmem-stream's
// upstreamFetch (node:http for plain-HTTP upstreams): a streamed reply of 10 tokens, and a JSON
// answer as the memory extraction gets. Alternates the two in three rounds; prints µs per request.
import OpenAI from 'openai'
import { startMock } from './lib/harness.mjs'
import { upstreamFetch } from '../dist/lib/llm/http-fetch.js'

const mock = await startMock()
mock.tokens = 10
const clients = {
  fetch: new OpenAI({ apiKey: 'k', baseURL: mock.url, maxRetries: 0 }),
  upstreamFetch: new OpenAI({ apiKey: 'k', baseURL: mock.url, maxRetries: 0, fetch: upstreamFetch })
}
const messages = [{ role: 'user', content: 'x' }]
const kinds = {
  async stream (client) {
    let tokens = 0
    for await (const part of await client.chat.completions.create({ model: 'm', stream: true, messages })) if (part.choices[0]?.delta?.content) tokens++
    if (tokens !== 10) throw new Error(`${tokens} tokens`)
  },
  async json (client) {
    const reply = await client.chat.completions.create({ model: 'm', messages })
    if (reply.choices[0].message.content !== '{"facts":[]}') throw new Error('unexpected answer')
  }
}
const N = 1500
const rows = {}
for (let round = 0; round < 3; round++) {
  for (const [name, client] of Object.entries(clients)) {
    for (const [kind, once] of Object.entries(kinds)) {
      for (let i = 0; i < 100; i++) await once(client) // warm-up: JIT, connections
      const cpu = process.cpuUsage()
      for (let i = 0; i < N; i++) await once(client)
      const used = process.cpuUsage(cpu)
      ;(rows[`${kind} ${name}`] ??= []).push((used.user + used.system) / N)
    }
  }
}
mock.close()
for (const [row, runs] of Object.entries(rows)) console.log(`${row.padEnd(22)} ${runs.map((us) => us.toFixed(0)).join(' / ')} µs per request`)
