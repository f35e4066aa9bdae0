// "The contract limit": the least a server can do and still honour agentmem-stream's contract for
// a turn. node:http, the same JWT check (fast-jwt, HS256 pinned) and body validation (ajv), then
// agentmem-stream's own bytes for the same turn, recorded from a real run (RECORDED_TURN: a JSON
// array of its frames), one write per frame, with backpressure. No store, no model, no state.
// In hold mode (scenario 4) it sends the frames up to the first content event and then only a
// keep-alive comment every KEEPALIVE_MS, as agentmem-stream does.
import http from 'node:http'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { check, HOLD_MS, KEEP_ALIVE, KEEPALIVE_MS, readBody, serve } from './contract.mjs'

const frames = JSON.parse(readFileSync(process.env.RECORDED_TURN, 'utf8'))
const firstContent = frames.findIndex((f) => f.includes('"chunk_type":"content"'))
const held = new Set()
const HEADERS = { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', 'X-Accel-Buffering': 'no', Vary: 'Accept-Encoding' }

serve(async (port) => {
  const server = http.createServer(async (req, res) => {
    const checked = check(req.headers.authorization, await readBody(req))
    if (checked.status !== undefined) {
      res.writeHead(checked.status)
      return res.end()
    }
    res.writeHead(200, HEADERS)
    const last = checked.hold ? firstContent : frames.length - 1
    for (let i = 0; i <= last; i++) {
      if (!res.write(frames[i])) await once(res, 'drain')
    }
    if (!checked.hold) return res.end()
    held.add(res)
    res.on('close', () => held.delete(res))
  })
  // One heartbeat for every held stream, as agentmem-stream's KeepAliveTicker; HOLD_MS bounds them all.
  setInterval(() => { for (const res of held) res.write(KEEP_ALIVE) }, KEEPALIVE_MS).unref()
  setTimeout(() => { for (const res of held) res.end() }, HOLD_MS).unref()
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return server.address().port
})
