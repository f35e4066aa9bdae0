import Fastify from 'fastify'
import fastifySse from '@fastify/sse'
import { check, chunk, closeSignal, HOLD_MS, KEEPALIVE_MS, serve } from '../servers/contract.mjs'

serve(async (port) => {
  const app = Fastify()
  // The chunks are already JSON text: serialize as-is, as the other servers do.
  await app.register(fastifySse, { heartbeatInterval: KEEPALIVE_MS, serializer: (d) => d })
  // Parse the body as text so the shared contract validates it, exactly as the others do.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, body))
  app.post('/api/v1/agents/:id/chat/stream', { sse: 'manual' }, async (request, reply) => {
    const result = check(request.headers.authorization, request.body, closeSignal(reply.raw))
    if (result.status !== undefined) return reply.code(result.status).send({ code: 'ERROR' })
    let id = 1
    await reply.sse.send({ id: String(id++), data: chunk('start') })
    for await (const token of result.tokens) {
      await reply.sse.send({ id: String(id++), data: chunk('content', token) })
      if (result.hold) {
        await new Promise((resolve) => { const t = setTimeout(resolve, HOLD_MS); reply.raw.on('close', () => { clearTimeout(t); resolve() }) })
        return
      }
    }
    await reply.sse.send({ id: String(id), data: chunk('done') })
    reply.sse.close()
  })
  await app.listen({ port, host: '127.0.0.1' })
  return app.server.address().port
})
