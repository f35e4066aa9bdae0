import type { IncomingMessage, ServerResponse } from 'node:http'
import { CancelledError } from '../chat/errors.js'
import { badRequest, conflict, gone, notFound } from '../errors.js'
import { sendNoContent } from '../http/respond.js'
import type { Router } from '../http/router.js'
import type { ResumableStream } from '../resume/registry.js'
import { tokenMatches } from '../auth/tokens.js'
import { ClientGoneError } from '../sse/writer.js'
import { authed, type AppContext } from './context.js'

function cursorOf (req: IncomingMessage, query: URLSearchParams): number {
  const raw = req.headers['last-event-id'] ?? query.get('last_event_id') ?? '0'
  if (!/^\d{1,15}$/.test(raw as string)) throw badRequest('Last-Event-ID must be an event id of this stream')
  return Number(raw)
}

/** Resume (replay, then follow live) and cancel. Only the stream's own user, or its resume token. */
export function streamRoutes (router: Router, app: AppContext): void {
  const { registry } = app

  function readable (req: IncomingMessage, id: string, query: URLSearchParams): ResumableStream {
    const token = query.get('resume_token')
    if (token !== null) {
      const stream = registry.get(id)
      if (stream === undefined || !tokenMatches(token, stream.resumeToken)) throw notFound('Stream')
      return stream
    }
    const principal = app.authenticate(req.headers.authorization)
    const stream = registry.get(id)
    if (stream === undefined || stream.orgId !== principal.orgId || stream.userId !== principal.userId) throw notFound('Stream')
    return stream
  }

  function follow (req: IncomingMessage, res: ServerResponse, stream: ResumableStream, cursor: number): void {
    const { sink, run } = stream
    if (cursor > sink.log.lastId) throw badRequest('Last-Event-ID is ahead of this stream', { last_event_id: sink.log.lastId })
    if (sink.log.ended && cursor === sink.log.lastId) {
      // 204 tells an EventSource to stop reconnecting: there is nothing more, ever.
      sendNoContent(res)
      return
    }
    const writer = app.newWriter(req, res, run.signal)
    if (!sink.attach(writer, cursor)) throw gone('Events after Last-Event-ID are no longer buffered')
    if (sink.log.ended) return
    registry.attached(stream)
    res.once('close', () => { if (!res.writableFinished) sink.detach(writer, new ClientGoneError()) })
  }

  router.on('GET', '/api/v1/streams/:id', async ({ req, res, params, query }) => {
    const stream = readable(req, params.id as string, query)
    follow(req, res, stream, cursorOf(req, query))
  })

  router.on('DELETE', '/api/v1/streams/:id', authed(app, async ({ res, params, principal }) => {
    const stream = registry.get(params.id as string)
    if (stream === undefined || stream.orgId !== principal.orgId) throw notFound('Stream')
    if (stream.endedAt !== null) throw conflict('Stream already ended')
    stream.run.abort(new CancelledError())
    sendNoContent(res)
  }))
}
