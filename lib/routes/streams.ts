import type { IncomingMessage, ServerResponse } from 'node:http'
import { CancelledError } from '../stream/outcomes.js'
import { viaCoordinator, type RemoteStream } from '../coord/coordinator.js'
import { badRequest, gone, notFound } from '../errors.js'
import { sendNoContent } from '../http/respond.js'
import type { Router } from '../http/router.js'
import type { ResumableStream } from '../stream/registry.js'
import { parseEventId } from '../stream/event-id.js'
import { tokenMatches } from '../auth/constant-time.js'
import type { Principal } from '../auth/jwt.js'
import { mayActFor } from '../auth/access.js'
import { ClientGoneError, SSE_HEADERS } from '../sse/writer.js'
import { authed, type AppContext } from './context.js'

/** Where a stream lives: in this process, or (with a shared coordinator) on another instance. */
export type Located = { local: ResumableStream, remote?: undefined } | { local?: undefined, remote: RemoteStream }

/** Who asks to read a stream: a principal (bearer token) or the holder of its resume token. */
export type ReadAccess = { principal: Principal, agentId?: string } | { token: string }

/** Resuming a stream: one path for GET /api/v1/streams/{id} and for a chat POST sent again with Last-Event-ID. */
export interface Resumer {
  /** The stream, when `access` may read it; the same 404 for unknown, expired and foreign streams. */
  readable: (id: string, access: ReadAccess) => Promise<Located>
  /** Replays what came after `cursor`, then follows live until the stream's terminal event. */
  resume: (req: IncomingMessage, res: ServerResponse, found: Located, cursor: number) => Promise<void>
}

export function createResumer (app: AppContext): Resumer {
  const { registry, coordinator } = app

  async function locate (id: string): Promise<Located | null> {
    const local = registry.get(id)
    if (local !== undefined) return { local }
    const remote = await viaCoordinator(coordinator.find(id))
    return remote === null ? null : { remote }
  }

  async function readable (id: string, access: ReadAccess): Promise<Located> {
    const found = await locate(id)
    if (found === null) throw notFound('Stream')
    const stream = found.local ?? found.remote
    const allowed = 'token' in access
      ? (found.local !== undefined ? tokenMatches(access.token, found.local.resumeToken) : found.remote.matchesToken(access.token))
      : stream.orgId === access.principal.orgId && mayActFor(access.principal, stream.userId) &&
        (access.agentId === undefined || access.agentId === (found.local?.run.agentId ?? found.remote?.agentId))
    if (!allowed) throw notFound('Stream')
    return found
  }

  /** The checks both kinds of stream share; true when there is something left to send. */
  function wantsMore (res: ServerResponse, cursor: number, lastId: number, ended: boolean): boolean {
    if (cursor > lastId) throw badRequest('Last-Event-ID is ahead of this stream', { last_event_id: lastId })
    if (ended && cursor === lastId) {
      // 204 tells an EventSource to stop reconnecting: there is nothing more, ever.
      sendNoContent(res)
      return false
    }
    return true
  }

  function follow (req: IncomingMessage, res: ServerResponse, stream: ResumableStream, cursor: number): void {
    const { sink, run } = stream
    if (!wantsMore(res, cursor, sink.log.lastId, sink.log.ended)) return
    const writer = app.newWriter(req, res, run.signal)
    if (!sink.attach(writer, cursor)) throw gone('Events after Last-Event-ID are no longer buffered')
    if (sink.log.ended) return
    registry.attached(stream)
    res.once('close', () => { if (!res.writableFinished) sink.detach(writer, new ClientGoneError()) })
  }

  /** Another instance generates: read its events from the coordinator until the stream ends. */
  async function followRemote (req: IncomingMessage, res: ServerResponse, stream: RemoteStream, cursor: number): Promise<void> {
    // A live stream's newest events may still be on their way to Redis: a cursor ahead of them is followed.
    if (!wantsMore(res, cursor, stream.ended ? stream.lastId : Number.MAX_SAFE_INTEGER, stream.ended)) return
    if (cursor < stream.firstId - 1) throw gone('Events after Last-Event-ID are no longer buffered')
    const reading = new AbortController()
    res.once('close', () => reading.abort(new ClientGoneError()))
    const writer = app.newWriter(req, res, reading.signal)
    writer.open()
    try {
      for await (const event of stream.follow(cursor, reading.signal)) {
        if (!writer.write(event.frame)) await writer.drained()
      }
      writer.end()
    } catch {
      // Gone, stuck, or the coordinator failed: cut the connection so the client resumes (and learns why).
      writer.end(true)
    }
  }

  return {
    readable,
    resume: async (req, res, found, cursor) => {
      // HEAD: the status and headers a GET would get, without following the stream.
      if (req.method === 'HEAD') {
        res.writeHead(200, SSE_HEADERS)
        res.end()
        return
      }
      if (found.local !== undefined) follow(req, res, found.local, cursor)
      else await followRemote(req, res, found.remote, cursor)
    }
  }
}

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
  const { coordinator } = app

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
    const found = await resumer.readable(params.id as string, { principal })
    if (found.local?.endedAt === null) found.local.run.abort(new CancelledError())
    else if (found.remote?.ended === false) await viaCoordinator(coordinator.cancel(found.remote.id))
    else throw notFound('Stream')
    sendNoContent(res)
  }))
}
