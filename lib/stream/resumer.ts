import type { IncomingMessage } from 'node:http'
import type { AppResponse } from '../http/response.js'
import type { Principal } from '../auth/jwt.js'
import { mayActFor } from '../auth/access.js'
import { viaCoordinator, type Coordinator } from '../coord/coordinator.js'
import { badRequest, notFound } from '../errors.js'
import { sendNoContent } from '../http/respond.js'
import { SSE_HEADERS } from '../sse/writer.js'
import type { WriterFactory } from '../sse/writers.js'
import { SharedStream, type StreamHandle } from './handle.js'
import type { StreamRegistry } from './registry.js'

/** Who asks to read a stream: a principal (bearer token) or the holder of its resume token. */
export type ReadAccess = { principal: Principal, agentId?: string } | { token: string }

/** Finding and resuming streams: one path for GET /api/v1/streams/{id}, its DELETE, and a chat POST sent again with Last-Event-ID. */
export class Resumer {
  readonly #registry: StreamRegistry
  readonly #coordinator: Pick<Coordinator, 'find' | 'cancel'>
  readonly #newWriter: WriterFactory

  constructor (registry: StreamRegistry, coordinator: Pick<Coordinator, 'find' | 'cancel'>, newWriter: WriterFactory) {
    this.#registry = registry
    this.#coordinator = coordinator
    this.#newWriter = newWriter
  }

  /** The stream, when `access` may read it; the same 404 for unknown, expired and foreign streams. */
  async readable (id: string, access: ReadAccess): Promise<StreamHandle> {
    const stream = await this.#locate(id)
    const allowed = stream !== null && ('token' in access
      ? stream.matchesToken(access.token)
      : stream.orgId === access.principal.orgId && mayActFor(access.principal, stream.userId) &&
        (access.agentId === undefined || access.agentId === stream.agentId))
    if (!allowed) throw notFound('Stream')
    return stream
  }

  async #locate (id: string): Promise<StreamHandle | null> {
    const local = this.#registry.get(id)
    if (local !== undefined) return local
    const remote = await viaCoordinator(this.#coordinator.find(id))
    return remote === null ? null : new SharedStream(remote, this.#coordinator)
  }

  /** Replays what came after `cursor`, then follows live until the stream's terminal event. */
  async resume (req: IncomingMessage, res: AppResponse, stream: StreamHandle, cursor: number): Promise<void> {
    // HEAD: the status and headers a GET would get, without following the stream.
    if (req.method === 'HEAD') {
      // A GET's body may be gzipped, depending on Accept-Encoding: caches must key on it for HEAD too.
      res.vary('Accept-Encoding')
      res.writeHead(200, SSE_HEADERS)
      res.end()
      return
    }
    if (cursor > stream.newestId) throw badRequest('Last-Event-ID is ahead of this stream', { last_event_id: stream.newestId })
    // 204 tells an EventSource to stop reconnecting: there is nothing more, ever.
    if (stream.ended && cursor === stream.newestId) return sendNoContent(res)
    await stream.follow(req, res, cursor, this.#newWriter)
  }
}
