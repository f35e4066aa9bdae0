import type { IncomingMessage } from 'node:http'
import { badRequest, notFound } from '../errors.js'
import { sendNoContent } from '../http/respond.js'
import type { Router } from '../http/router.js'
import { parseEventId } from '../protocol/event-id.js'
import type { ReadAccess, Resumer } from '../stream/resumer.js'
import { authed, type AppContext } from './context.js'

/** Last-Event-ID (header, or `last_event_id` for clients that cannot send headers) of the stream `id`. */
function cursorOf (req: IncomingMessage, query: URLSearchParams, id: string): number {
  const raw = req.headers['last-event-id'] ?? query.get('last_event_id') ?? ''
  const cursor = parseEventId(raw as string)
  if (cursor === null || (cursor.streamId !== null && cursor.streamId !== id)) {
    throw badRequest('Last-Event-ID must be an event id of this stream')
  }
  return cursor.seq
}

/** Resume (replay, then follow live) and cancel. Only the stream's own user, or its resume token. */
export function streamRoutes (router: Router, app: AppContext, resumer: Resumer): void {
  router.on('GET', '/api/v1/streams/:id', async ({ req, res, params, query }) => {
    const id = params.id as string
    const token = query.get('resume_token')
    // Authenticate before looking anything up, so a bad token costs no Redis round trip.
    const access: ReadAccess = token === null ? { principal: await app.authenticate(req) } : { token }
    const found = await resumer.readable(id, access)
    await resumer.resume(req, res, found, cursorOf(req, query, id))
  })

  // The same reader check as GET: another user's stream, an ended one and an unknown one all get one 404.
  router.on('DELETE', '/api/v1/streams/:id', authed(app, async ({ res, params, principal }) => {
    const stream = await resumer.readable(params.id as string, { principal })
    if (!await stream.cancel()) throw notFound('Stream')
    sendNoContent(res)
  }))
}
