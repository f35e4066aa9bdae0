import express from 'express'
import { createSession } from 'better-sse'
import { once } from 'node:events'
import { check, chunk, HOLD_MS, serve } from './contract.mjs'

serve(async (port) => {
  const app = express()
  app.use(express.text({ type: 'application/json', limit: '1mb' }))
  app.post('/api/v1/agents/:id/chat/stream', async (req, res) => {
    const result = check(req.headers.authorization, req.body)
    if (result.status !== undefined) return res.status(result.status).json({ code: 'ERROR' })
    // better-sse serializes with JSON.stringify by default; the chunks are already JSON text.
    const session = await createSession(req, res, { serializer: (d) => d, keepAlive: 15000 })
    let id = 1
    session.push(chunk('start'), undefined, String(id++))
    for (const token of result.tokens) {
      session.push(chunk('content', token), undefined, String(id++))
      // better-sse has no backpressure of its own; without this wait a long stream would buffer in memory.
      if (res.writableNeedDrain) await once(res, 'drain')
      if (result.hold) {
        const timer = setTimeout(() => res.end(), HOLD_MS)
        res.on('close', () => clearTimeout(timer))
        return
      }
    }
    session.push(chunk('done'), undefined, String(id))
    res.end()
  })
  const server = app.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return server.address().port
})
