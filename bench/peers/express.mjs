import express from 'express'
import compression from 'compression'
import { createSession } from 'better-sse'
import { once } from 'node:events'
import { check, chunk, closeSignal, HOLD_MS, KEEPALIVE_MS, serve } from '../servers/contract.mjs'

serve(async (port) => {
  const app = express()
  app.use(express.text({ type: 'application/json', limit: '1mb' }))
  // Scenario 5: the `compression` middleware with agentmem-stream's zlib settings; SSE needs
  // res.flush() after each event, which the middleware adds (better-sse does not call it).
  // better-sse's default Cache-Control says no-transform, which the middleware honours by not compressing.
  const gzip = process.env.GZIP === 'on'
  if (gzip) app.use(compression({ level: 6, windowBits: 10, memLevel: 3, chunkSize: 1024 }))
  app.post('/api/v1/agents/:id/chat/stream', async (req, res) => {
    const result = check(req.headers.authorization, req.body, closeSignal(res))
    if (result.status !== undefined) return res.status(result.status).json({ code: 'ERROR' })
    // better-sse serializes with JSON.stringify by default; the chunks are already JSON text.
    const session = await createSession(req, res, { serializer: (d) => d, keepAlive: KEEPALIVE_MS, ...(gzip ? { headers: { 'Cache-Control': 'private, no-cache' } } : {}) })
    let id = 1
    // better-sse has no backpressure of its own; without the drain wait a long stream would buffer in memory.
    const push = (token) => {
      session.push(chunk('content', token), undefined, String(id++))
      res.flush?.()
      return res.writableNeedDrain ? once(res, 'drain') : undefined
    }
    session.push(chunk('start'), undefined, String(id++))
    res.flush?.()
    if (Symbol.asyncIterator in result.tokens) {
      for await (const token of result.tokens) await push(token)
    } else {
      for (const token of result.tokens) {
        const wait = push(token)
        if (wait !== undefined) await wait
        if (result.hold) {
          const timer = setTimeout(() => res.end(), HOLD_MS)
          res.on('close', () => clearTimeout(timer))
          return
        }
      }
    }
    session.push(chunk('done'), undefined, String(id))
    res.end()
  })
  const server = app.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return server.address().port
})
