import type { IncomingMessage, ServerResponse } from 'node:http'
import { classifyFailure, ServerShutdownError, StreamTimeoutError } from '../chat/errors.js'
import type { Turn } from '../chat/orchestrator.js'
import { BroadcastSink, CollectingSink } from '../chat/sinks.js'
import { ReplayLog } from '../resume/replay-log.js'
import type { StreamRun } from '../chat/stream-run.js'
import { HttpError, notFound, serviceUnavailable, upstreamError, upstreamTimeout } from '../errors.js'
import { readJsonBody } from '../http/body.js'
import { intParam } from '../http/query.js'
import { sendJson } from '../http/respond.js'
import type { Router } from '../http/router.js'
import { UpstreamError } from '../llm/provider.js'
import { schemas, validator, type ChatRequest } from '../schemas.js'
import { ClientGoneError } from '../sse/writer.js'
import type { Principal } from '../auth/jwt.js'
import { authed, type AppContext } from './context.js'

const validateChat = validator<ChatRequest>(schemas.chatRequest)

/** A failure while opening the upstream: nothing was sent yet, so it is a plain HTTP error. */
function openFailure (err: unknown): unknown {
  if (err instanceof StreamTimeoutError) return upstreamTimeout(err.ms)
  if (err instanceof UpstreamError) return upstreamError(err.message, { upstream_status: err.status })
  if (err instanceof ServerShutdownError) return serviceUnavailable(err.message)
  return err
}

/** The non-streaming reply reports a failed run with the status the error chunk stood for. */
function runFailure (code: unknown, message: string): HttpError {
  if (typeof code === 'string' && code.endsWith('_timeout')) return new HttpError(504, 'UPSTREAM_TIMEOUT', message, { code })
  if (code === 'upstream_error') return upstreamError(message)
  if (code === 'server_shutdown') return serviceUnavailable(message)
  return new HttpError(500, 'INTERNAL_ERROR', message)
}

export function chatRoutes (router: Router, app: AppContext): void {
  const { store, options, orchestrator } = app

  /** Everything that can fail before the first byte of the reply: auth, body, agent, slot, upstream. */
  async function openTurn (req: IncomingMessage, res: ServerResponse, agentId: string, principal: Principal): Promise<{ run: StreamRun, turn: Turn, onClose: () => void }> {
    const request = validateChat(await readJsonBody(req, options.bodyLimitBytes))
    const agent = await store.getAgent(principal.orgId, agentId)
    if (agent === null) throw notFound('Agent')
    const run = await app.startRun(principal.orgId, agent.id, String(res.getHeader('x-request-id')))
    // Until the stream exists there is nothing to resume: a client that leaves cancels the turn.
    const onClose = (): void => {
      if (!res.writableFinished) run.abort(new ClientGoneError())
    }
    res.once('close', onClose)
    try {
      const turn = await orchestrator.open({ principal, agent, request, signal: run.signal })
      return { run, turn, onClose }
    } catch (err) {
      const reason = run.signal.aborted ? run.signal.reason : err
      run.release(classifyFailure(reason).outcome)
      throw openFailure(reason)
    }
  }

  router.on('POST', '/api/v1/agents/:id/chat/stream', authed(app, async ({ req, res, params, principal }) => {
    const { run, turn, onClose } = await openTurn(req, res, params.id as string, principal)
    res.off('close', onClose)
    const sink = new BroadcastSink(new ReplayLog(app.replayLimits), (reason) => app.registry.detached(stream, reason))
    const stream = app.registry.add(run, sink, principal.userId)
    sink.feed = app.coordinator.share(stream)
    const writer = app.newWriter(req, res, run.signal)
    res.once('close', () => { if (!res.writableFinished) sink.detach(writer, new ClientGoneError()) })
    sink.attach(writer, 0)
    await run.pump(turn, sink, { resume_token: stream.resumeToken })
  }))

  router.on('POST', '/api/v1/agents/:id/chat', authed(app, async ({ req, res, params, principal }) => {
    const startedAt = performance.now()
    const { run, turn } = await openTurn(req, res, params.id as string, principal)
    const sink = new CollectingSink()
    await run.pump(turn, sink)
    const terminal = sink.terminal
    if (terminal === null) return // the client left; nobody to answer
    if (terminal.chunk_type === 'error') throw runFailure(terminal.code, terminal.content as string)
    sendJson(res, 200, {
      data: {
        message_id: terminal.message_id,
        content: sink.text,
        memories_updated: sink.memoriesCount > 0,
        memories_count: sink.memoriesCount,
        tool_calls: sink.toolCalls,
        processing_time_ms: Math.round(performance.now() - startedAt)
      },
      success: true
    })
  }))

  router.on('GET', '/api/v1/agents/:id/chat/history', authed(app, async ({ res, params, query, principal }) => {
    const agent = await store.getAgent(principal.orgId, params.id as string)
    if (agent === null) throw notFound('Agent')
    const sessionId = query.get('session_id') ?? undefined
    const limit = intParam(query, 'limit', { min: 1, max: 500, fallback: 50 })
    sendJson(res, 200, { data: await store.listMessages(principal.orgId, agent.id, { sessionId, limit }), success: true })
  }))
}
