// "The limit": node:http writing pre-framed SSE events, no auth, no validation, no state machine.
// It honours backpressure like every other server here, or its numbers would not be comparable.
import http from 'node:http'
import { once } from 'node:events'
import { HOLD_MS, readBody, serve } from './contract.mjs'

const frame = (id, data) => `id: ${id}\ndata: ${data}\n\n`
const START = '{"chunk_type":"start","content":null,"tool_call":null,"memories_count":null}'
const DONE = '{"chunk_type":"done","content":null,"tool_call":null,"memories_count":null}'

serve(async (port) => {
  const server = http.createServer(async (req, res) => {
    const body = JSON.parse(await readBody(req))
    const tokens = `You said: ${body.message}`.match(/\S+\s*/g)
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
    let id = 1
    res.write(frame(id++, START))
    const count = body.tokens ?? tokens.length
    for (let i = 0; i < count; i++) {
      const text = tokens[i % tokens.length]
      if (!res.write(frame(id++, `{"chunk_type":"content","content":${JSON.stringify(text)},"tool_call":null,"memories_count":null}`))) await once(res, 'drain')
      if (body.hold === true) {
        const timer = setTimeout(() => res.end(), HOLD_MS)
        res.on('close', () => clearTimeout(timer))
        return
      }
    }
    res.end(frame(id, DONE))
  })
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return server.address().port
})
