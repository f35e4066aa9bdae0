import type { IncomingMessage, ServerResponse } from 'node:http'
import { CancelledError } from '../chat/errors.js'
import { viaCoordinator, type RemoteStream } from '../coord/coordinator.js'
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

/** Where a stream lives: in this process, or (with a shared coordinator) on another instance. */
type Located = { local: ResumableStream, remote?: undefined } | { local?: undefined, remote: RemoteStream }

/** Resume (replay, then follow live) and cancel. Only the stream's own user, or its resume token. */
export function streamRoutes (router: Router, app: AppContext): void {
  const { registry, coordinator } = app

  async function locate (id: string): Promise<Located | null> {
    const local = registry.get(id)
    if (local !== undefined) return { local }
    const remote = await viaCoordinator(coordinator.find(id))
    return remote === null ? null : { remote }
  }

  async function readable (req: IncomingMessage, id: string, query: URLSearchParams): Promise<Located> {
    const token = query.get('resume_token')
    // Authenticate before looking anything up, so a bad token costs no Redis round trip.
    const principal = token === null ? app.authenticate(req.headers.authorization) : null
    const found = await locate(id)
    if (found === null) throw notFound('Stream')
    const stream = found.local ?? found.remote
    const allowed = principal === null
      ? (found.local !== undefined ? tokenMatches(token as string, found.local.resumeToken) : found.remote.matchesToken(token as string))
      : stream.orgId === principal.orgId && stream.userId === principal.userId
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

  router.on('GET', '/api/v1/streams/:id', async ({ req, res, params, query }) => {
    const found = await readable(req, params.id as string, query)
    const cursor = cursorOf(req, query)
    if (found.local !== undefined) follow(req, res, found.local, cursor)
    else await followRemote(req, res, found.remote, cursor)
  })

  router.on('DELETE', '/api/v1/streams/:id', authed(app, async ({ res, params, principal }) => {
    const found = await locate(params.id as string)
    if (found === null || (found.local ?? found.remote).orgId !== principal.orgId) throw notFound('Stream')
    const { local, remote } = found
    if (local?.endedAt === null) local.run.abort(new CancelledError())
    else if (remote?.ended === false) await viaCoordinator(coordinator.cancel(remote.id))
    else throw conflict('Stream already ended')
    sendNoContent(res)
  }))
}
