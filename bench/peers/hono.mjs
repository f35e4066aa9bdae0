import { Hono } from 'hono'
import { streamSSE } from 'hono/streaming'
import { serve as honoServe } from '@hono/node-server'
import { check, chunk, RELAYING, HOLD_MS, KEEP_ALIVE, KEEPALIVE_MS, serve } from '../servers/contract.mjs'

serve(async (port) => {
  const app = new Hono()
  app.post('/api/v1/agents/:id/chat/stream', async (c) => {
    const result = check(c.req.header('authorization'), await c.req.text(), RELAYING ? c.req.raw.signal : undefined)
    if (result.status !== undefined) return c.json({ code: 'ERROR' }, result.status)
    return streamSSE(c, async (stream) => {
      let id = 1
      await stream.writeSSE({ id: String(id++), data: chunk('start') })
      for await (const token of result.tokens) {
        await stream.writeSSE({ id: String(id++), data: chunk('content', token) })
        if (result.hold) {
          // streamSSE has no heartbeat of its own: comments on a timer, as the others send.
          const beat = setInterval(() => { void stream.write(KEEP_ALIVE) }, KEEPALIVE_MS)
          await new Promise((resolve) => { const t = setTimeout(resolve, HOLD_MS); stream.onAbort(() => { clearTimeout(t); resolve() }) })
          clearInterval(beat)
          return
        }
      }
      await stream.writeSSE({ id: String(id), data: chunk('done') })
    })
  })
  return await new Promise((resolve) => {
    honoServe({ fetch: app.fetch, port, hostname: '127.0.0.1' }, (info) => resolve(info.port))
  })
})
