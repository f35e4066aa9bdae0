import type { IncomingMessage } from 'node:http'
import type { AppResponse } from '../http/response.js'
import { classifyFailure, endingAsHttp, type StreamEndCode } from '../stream/outcomes.js'
import type { OpenedTurn } from '../chat/orchestrator.js'
import { Turn } from '../stream/turn.js'
import { CollectingSink } from '../stream/sinks.js'
import { parseEventId } from '../protocol/event-id.js'
import type { StreamRun } from '../stream/run.js'
import { badRequest, notFound } from '../errors.js'
import { readJsonBody } from '../http/body.js'
import { intParam } from '../http/query.js'
import { sendJson } from '../http/respond.js'
import type { Router } from '../http/router.js'
import { schemas, validator, type ChatRequest } from '../schemas.js'
import { ClientGoneError } from '../sse/writer.js'
import type { StreamChunk } from '../protocol/chunk.js'
import type { Principal } from '../auth/jwt.js'
import { actingUser, listedUser } from '../auth/access.js'
import { authed, type AppContext } from './context.js'
import { idempotencyKeyOf, requestHash, type Idempotency, type OwnedKey } from './idempotency.js'
import type { Resumer } from '../stream/resumer.js'

const validateChat = validator<ChatRequest>(schemas.chatRequest)

/** A failure while opening the upstream: nothing was sent yet, so it is a plain HTTP error (an unknown one stays itself: a 500, logged). */
function openFailure (err: unknown): unknown {
  const failure = classifyFailure(err)
  return failure.code === 'internal_error' ? err : endingAsHttp(failure.code, failure.message, failure.details)
}

/** Gives the key up when `work` fails, so a retry with it runs the turn again. */
async function releasingOnFailure<T> (key: OwnedKey | null, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    await key?.release()
    throw err
  }
}

export function chatRoutes (router: Router, app: AppContext, resumer: Resumer, idempotency: Idempotency): void {
  const { store, options, orchestrator } = app

  /** Everything that can fail before the first byte of the reply: agent, slot, upstream. */
  async function openTurn (res: AppResponse, agentId: string, principal: Principal, request: ChatRequest): Promise<{ run: StreamRun, opened: OpenedTurn, onClose: () => void }> {
    const agent = await app.agents.get(principal.orgId, agentId)
    if (agent === null) throw notFound('Agent')
    const run = await app.startRun(principal.orgId, agent.id, res.requestId)
    // Until the stream exists there is nothing to resume: a client that leaves cancels the turn.
    const onClose = (): void => {
      if (!res.writableFinished) run.abort(new ClientGoneError())
    }
    res.on('close', onClose)
    try {
      const opened = await orchestrator.open({ principal, agent, request, cancel: run.cancel })
      return { run, opened, onClose }
    } catch (err) {
      const reason = run.cancel.aborted ? run.cancel.reason : err
      run.release(classifyFailure(reason).outcome)
      throw openFailure(reason)
    }
  }

  /**
   * The body of a chat request and, with an Idempotency-Key, what the key says: the request and
   * the key it took when this request runs the turn (`key` null without a header), or 'answered'
   * when it attached to the turn an earlier request with the key started (or its client left).
   */
  async function prepare (req: IncomingMessage, res: AppResponse, route: string, agentId: string, principal: Principal,
    attach: (record: { stream?: string, reply?: unknown }) => Promise<void>): Promise<{ request: ChatRequest, key: OwnedKey | null } | 'answered'> {
    const request = validateChat(await readJsonBody(req, options.bodyLimitBytes))
    actingUser(principal, request.user_id)
    const key = idempotencyKeyOf(req)
    if (key === null) return { request, key: null }
    const claim = await idempotency.claim(principal, key, requestHash(route, agentId, request), res)
    if ('owned' in claim) return { request, key: claim.owned }
    if ('record' in claim) await attach(claim.record)
    return 'answered'
  }

  router.on('POST', '/api/v1/agents/:id/chat/stream', authed(app, async ({ req, res, params, principal }) => {
    const agentId = params.id as string
    // A client reconnecting by sending its POST again (fetch-event-source, eventsource, sse.js)
    // continues the turn it was reading; it never starts a second one.
    const lastEventId = req.headers['last-event-id']
    if (typeof lastEventId === 'string' && lastEventId !== '') {
      const cursor = parseEventId(lastEventId)
      if (cursor?.streamId == null) throw badRequest('Last-Event-ID must be an event id of a stream (<stream id>:<n>)')
      req.resume() // the repeated body is not needed
      await resumer.resume(req, res, await resumer.readable(cursor.streamId, { principal, agentId }), cursor.seq)
      return
    }
    // The request hash names the route, so a record that matched it is this route's: a stream here.
    const prepared = await prepare(req, res, 'stream', agentId, principal, async ({ stream }) => {
      await resumer.resume(req, res, await resumer.readable(stream as string, { principal, agentId }), 0)
    })
    if (prepared === 'answered') return
    const { request, key } = prepared
    const { run, opened, onClose } = await releasingOnFailure(key, async () => await openTurn(res, agentId, principal, request))
    res.off('close', onClose)
    // With an Idempotency-Key a request racing this one looks the stream up before its first event.
    const stream = app.registry.open(run, principal.userId, key !== null)
    // Said before the first byte, so a request racing this one finds the stream it attaches to.
    await key?.settle({ stream: run.id })
    // The POST reads its stream as every resume does, from the start.
    await stream.follow(req, res, 0, app.newWriter)
    // Started, not awaited: the request handler is done once the stream runs (start() never throws),
    // so an idle stream holds no suspended handler frames, and their closures over req and res, beside it.
    new Turn(run, stream.sink, opened.plan, opened.reply, orchestrator).start({ resume_token: stream.resumeToken })
  }))

  router.on('POST', '/api/v1/agents/:id/chat', authed(app, async ({ req, res, params, principal }) => {
    const startedAt = performance.now()
    const agentId = params.id as string
    // ...and a one-shot answer here.
    const prepared = await prepare(req, res, 'chat', agentId, principal, async ({ reply }) => { sendJson(res, 200, reply) })
    if (prepared === 'answered') return
    const { request, key } = prepared
    await releasingOnFailure(key, async () => {
      const { run, opened } = await openTurn(res, agentId, principal, request)
      const sink = new CollectingSink()
      await new Turn(run, sink, opened.plan, opened.reply, orchestrator).stream()
      const terminal = sink.terminal as StreamChunk
      if (terminal.code === 'client_gone') throw new ClientGoneError() // nobody to answer
      if (terminal.chunk_type === 'error') throw endingAsHttp(terminal.code as StreamEndCode, terminal.content as string)
      const reply = {
        data: {
          message_id: terminal.message_id,
          content: sink.text,
          memories_updated: sink.memoriesCount > 0,
          memories_count: sink.memoriesCount,
          tool_calls: sink.toolCalls,
          processing_time_ms: Math.round(performance.now() - startedAt)
        },
        success: true
      }
      await key?.settle({ reply })
      sendJson(res, 200, reply)
    }).catch((err: unknown) => {
      if (!(err instanceof ClientGoneError)) throw err
    })
  }))

  router.on('GET', '/api/v1/agents/:id/chat/history', authed(app, async ({ res, params, query, principal }) => {
    const agent = await store.getAgent(principal.orgId, params.id as string)
    if (agent === null) throw notFound('Agent')
    const sessionId = query.get('session_id') ?? undefined
    const limit = intParam(query, 'limit', { min: 1, max: 500, fallback: 50 })
    const userId = listedUser(principal, query.get('user_id') ?? undefined)
    sendJson(res, 200, { data: await store.listMessages(principal.orgId, agent.id, { sessionId, userId, limit }), success: true })
  }))
}
