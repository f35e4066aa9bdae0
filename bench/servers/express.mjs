import express from 'express'
import { createSession } from 'better-sse'
import { once } from 'node:events'
import { check, chunk, closeSignal, HOLD_MS, KEEPALIVE_MS, serve } from './contract.mjs'

serve(async (port) => {
  const app = express()
  app.use(express.text({ type: 'application/json', limit: '1mb' }))
  app.post('/api/v1/agents/:id/chat/stream', async (req, res) => {
    const result = check(req.headers.authorization, req.body, closeSignal(res))
    if (result.status !== undefined) return res.status(result.status).json({ code: 'ERROR' })
    // better-sse serializes with JSON.stringify by default; the chunks are already JSON text.
    const session = await createSession(req, res, { serializer: (d) => d, keepAlive: KEEPALIVE_MS })
    let id = 1
    // better-sse has no backpressure of its own; without the drain wait a long stream would buffer in memory.
    const push = (token) => {
      session.push(chunk('content', token), undefined, String(id++))
      return res.writableNeedDrain ? once(res, 'drain') : undefined
    }
    session.push(chunk('start'), undefined, String(id++))
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
