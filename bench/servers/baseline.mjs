// "The limit": node:http writing pre-framed SSE events, no auth, no validation, no state machine.
// It honours backpressure like every other server here, or its numbers would not be comparable.
// With UPSTREAM_URL set it relays the mock's tokens (through the openai SDK) the same way; asked
// for gzip, it compresses with agentmem-stream's settings (small window, a sync flush per event).
import http from 'node:http'
import { once } from 'node:events'
import { constants, createGzip } from 'node:zlib'
import { closeSignal, HOLD_MS, KEEP_ALIVE, KEEPALIVE_MS, readBody, relay, serve } from './contract.mjs'

const frame = (id, data) => `id: ${id}\ndata: ${data}\n\n`
const content = (text) => `{"chunk_type":"content","content":${JSON.stringify(text)},"tool_call":null,"memories_count":null}`
const START = '{"chunk_type":"start","content":null,"tool_call":null,"memories_count":null}'
const DONE = '{"chunk_type":"done","content":null,"tool_call":null,"memories_count":null}'

serve(async (port) => {
  const server = http.createServer(async (req, res) => {
    const body = JSON.parse(await readBody(req))
    const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...(gzip ? { 'content-encoding': 'gzip' } : {}) })
    const out = gzip ? createGzip({ level: 6, windowBits: 10, memLevel: 3, chunkSize: 1024 }) : res
    if (gzip) out.pipe(res)
    const write = (text) => {
      const ok = out.write(text)
      if (gzip) out.flush(constants.Z_SYNC_FLUSH)
      return ok ? undefined : once(out, 'drain')
    }
    let id = 1
    write(frame(id++, START))
    if (process.env.UPSTREAM_URL !== undefined) {
      for await (const text of relay(body.message, closeSignal(res))) await write(frame(id++, content(text)))
      return out.end(frame(id, DONE))
    }
    const tokens = `You said: ${body.message}`.match(/\S+\s*/g)
    const count = body.tokens ?? tokens.length
    for (let i = 0; i < count; i++) {
      const wait = write(frame(id++, content(tokens[i % tokens.length])))
      if (wait !== undefined) await wait
      if (body.hold === true) {
        const timer = setTimeout(() => out.end(), HOLD_MS)
        const beat = setInterval(() => write(KEEP_ALIVE), KEEPALIVE_MS)
        res.on('close', () => { clearTimeout(timer); clearInterval(beat) })
        return
      }
    }
    out.end(frame(id, DONE))
  })
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return server.address().port
})
