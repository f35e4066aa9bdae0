import t from 'tap'
import { ConcurrencyLimiter } from '../lib/limits/concurrency.js'
import { UpstreamError, type LlmReply, type LlmRequest, type ReplyHandler, type TokenUsage } from '../lib/llm/provider.js'
import type { MemoryOp } from '../lib/memory/service.js'
import type { StreamChunk } from '../lib/protocol/chunk.js'
import { ServerShutdownError, type StreamOutcome } from '../lib/stream/outcomes.js'
import { StreamRun, type RunObserver } from '../lib/stream/run.js'
import type { ChunkSink } from '../lib/stream/sinks.js'
import { REASONING_KEPT_CHARS, Turn, type ExtractionReport, type TurnPlan, type TurnServices } from '../lib/stream/turn.js'
import type { Message } from '../lib/store/store.js'
import type { ToolContext } from '../lib/tools/registry.js'

/** A sink that keeps every chunk; `content` may hand back a wait, as a sink with a slow reader does. */
class RecordingSink implements ChunkSink {
  readonly bufferedBytes = 0
  readonly sent = { events: 0, bytes: 0 }
  readonly chunks: StreamChunk[] = []
  ended: boolean | null = null
  contentWait: (() => Promise<void> | undefined) | null = null
  eventWait: (() => Promise<void> | undefined) | null = null
  start (chunk: StreamChunk): void { this.chunks.push(chunk) }
  content (text: string): Promise<void> | undefined {
    this.chunks.push({ chunk_type: 'content', content: text, tool_call: null, memories_count: null })
    return this.contentWait?.()
  }

  event (chunk: StreamChunk): Promise<void> | undefined {
    this.chunks.push(chunk)
    return this.eventWait?.()
  }

  finish (chunk: StreamChunk): void { this.chunks.push(chunk) }
  end (destroy: boolean): void { this.ended = destroy }
  /** Chunks written when the turn said its reply was complete. */
  heldAt: number[] = []
  holdForEnding (): void { this.heldAt.push(this.chunks.length) }
  types (): string[] { return this.chunks.map((c) => c.chunk_type) }
}

type Script = (h: ReplyHandler, request: LlmRequest) => Promise<void>

/** A reply that plays `script` and ends as it settles, as a provider does: onComplete, or onError with the reason. */
const scripted = (script: Script, request: LlmRequest): LlmReply => ({
  pipe: (h) => { script(h, request).then(() => { h.onComplete() }, (err: unknown) => { h.onError(err) }) }
})
const USAGE: TokenUsage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }

/** A provider that plays one script per reply it opens, and the services around it, recording what they were asked. */
function fakeServices (scripts: Script[], report: ExtractionReport = { content: null, memories: [] }): TurnServices<TurnPlan> & {
  saved: Array<{ content: string, outcome: string, usage: TokenUsage | null, reasoning: string }>
  requests: LlmRequest[]
  log: string[]
} {
  const requests: LlmRequest[] = []
  const saved: Array<{ content: string, outcome: string, usage: TokenUsage | null, reasoning: string }> = []
  const log: string[] = []
  const reply = (request: LlmRequest): LlmReply => {
    const script = scripts.shift() as Script
    return scripted(script, request)
  }
  return {
    requests,
    saved,
    log,
    maxToolRounds: 2,
    // A copy: the turn goes on adding to the messages it sent.
    llm: { open: async (request) => { requests.push({ ...request, messages: [...request.messages] }); return reply(request) } },
    runTool: async (name, args) => name === 'fails' ? { ok: false, args, error: 'kaboom' } : { ok: true, args: JSON.parse(args), result: `ran ${name}` },
    saveReply: async (_plan, content, outcome, usage, reasoning) => {
      log.push(`save ${outcome}`)
      saved.push({ content, outcome, usage, reasoning })
      return { id: 'msg-1' } as unknown as Message
    },
    extract: async () => { log.push('extract'); return report }
  }
}

function setup (scripts: Script[], opts: { report?: ExtractionReport, includeReasoning?: boolean, observer?: RunObserver } = {}): {
  run: StreamRun, sink: RecordingSink, services: ReturnType<typeof fakeServices>, turn: Turn, ends: StreamOutcome[]
} {
  const limiter = new ConcurrencyLimiter({ maxPerTenant: 1, maxTotal: 1 })
  const acquired = limiter.tryAcquire('o')
  if (!acquired.ok) throw new Error('slot expected')
  const ends: StreamOutcome[] = []
  const run = new StreamRun({
    orgId: 'o',
    agentId: 'a',
    requestId: 'r',
    lease: acquired.lease,
    observer: opts.observer,
    timeouts: { firstTokenMs: 60_000, idleMs: 60_000, maxDurationMs: 60_000 },
    onEnd: (_run, outcome) => ends.push(outcome)
  })
  const services = fakeServices(scripts.slice(1), opts.report)
  const request: LlmRequest = { messages: [{ role: 'user', content: 'hi' }], tools: [{ name: 't', description: '', parameters: {} }], signal: run.signal }
  const plan: TurnPlan = {
    sessionId: 's',
    memoriesRetrieved: 0,
    includeReasoning: opts.includeReasoning === true,
    request,
    tools: { signal: run.signal, memoryOps: [] } as unknown as ToolContext
  }
  const first = scripts[0] as Script
  const sink = new RecordingSink()
  const turn = new Turn(run, sink, plan, scripted(first, request), services)
  return { run, sink, services, turn, ends }
}

t.test('text and usage go to the sink as pushed; the reply is stored before extraction and before done', async (t) => {
  const { sink, services, turn, ends } = setup([async (h) => {
    h.onText('Hel')
    h.onText('lo')
    h.onUsage(USAGE)
  }])
  t.equal(await turn.stream({ resume_token: 'x' }), 'done')
  t.same(sink.types(), ['start', 'content', 'content', 'memory_update', 'memory_update', 'done'])
  t.match(sink.chunks[0], { chunk_type: 'start', stream_id: String, session_id: 's', memories_retrieved: 0, resume_token: 'x' })
  t.same(sink.chunks.slice(1, 3).map((c) => c.content), ['Hel', 'lo'])
  t.same(services.saved, [{ content: 'Hello', outcome: 'done', usage: USAGE, reasoning: '' }])
  t.same(services.log, ['save done', 'extract'], 'stored first, then extraction')
  t.same(sink.heldAt, [3], 'once the reply was complete (start and two contents), the last writes may wait for the ending')
  t.match(sink.chunks.at(-1), { chunk_type: 'done', memories_count: 0, message_id: 'msg-1', usage: USAGE })
  t.equal(sink.ended, false, 'ended without destroying the connection')
  t.same(ends, ['done'])
})

t.test('a sink that must drain pauses the provider until it has', async (t) => {
  let drained = (): void => {}
  const seenPaused: boolean[] = []
  const { sink, turn } = setup([async (h) => {
    for (const text of ['a', 'b', 'c']) {
      h.onText(text)
      seenPaused.push(h.paused !== null)
      if (h.paused !== null) await h.paused
    }
  }])
  sink.contentWait = () => sink.chunks.length === 2 ? new Promise<void>((resolve) => { drained = resolve }) : undefined
  const streaming = turn.stream()
  await new Promise((resolve) => setImmediate(resolve))
  t.same(sink.chunks.map((c) => c.content).slice(1), ['a'], 'nothing after the first token while the sink drains')
  drained()
  t.equal(await streaming, 'done')
  t.same(seenPaused, [true, false, false], 'paused after the token that filled the sink, flowing once it drained')
  t.same(sink.chunks.filter((c) => c.chunk_type === 'content').map((c) => c.content), ['a', 'b', 'c'])
})

t.test('two pushes that each fill the sink: the provider waits for both', async (t) => {
  const drains: Array<() => void> = []
  const waitOnce = (): Promise<void> => new Promise<void>((resolve) => { drains.push(resolve) })
  let resumed = false
  const { sink, turn } = setup([async (h) => {
    // One upstream chunk may carry a thought and text together: both are pushed before the provider looks.
    h.onReasoning('hmm')
    h.onText('ok')
    const paused = h.paused as Promise<void>
    void paused.then(() => { resumed = true })
    await paused
  }], { includeReasoning: true })
  sink.eventWait = () => sink.chunks.at(-1)?.chunk_type === 'reasoning' ? waitOnce() : undefined
  sink.contentWait = waitOnce
  const streaming = turn.stream()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(drains.length, 2, 'both writes are waiting')
  ;(drains[1] as () => void)()
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(resumed, 'still paused: the first write has not drained')
  ;(drains[0] as () => void)()
  t.equal(await streaming, 'done')
  t.ok(resumed)
})

t.test('tool rounds: whole calls run in order, results go back to the model, the last round offers no tools', async (t) => {
  const observed: string[] = []
  const { sink, services, turn } = setup([
    async (h) => {
      h.onText('Let me check. ')
      h.onToolCall({ id: '', name: 'lookup', arguments: '{"q":1}' })
      h.onToolCall({ id: 'given', name: 'fails', arguments: 'not json' })
      h.onUsage(USAGE)
    },
    async (h) => { h.onToolCall({ id: 'again', name: 'lookup', arguments: '{}' }) },
    async (h) => { h.onText('Done.'); h.onUsage({ ...USAGE, reasoning_tokens: 4 }) }
  ], { observer: { toolCall: (status) => observed.push(status) } })
  t.equal(await turn.stream(), 'done')
  t.same(sink.types(), ['start', 'content', 'tool_call', 'tool_call', 'tool_call', 'tool_call', 'tool_call', 'tool_call', 'content', 'memory_update', 'memory_update', 'done'])
  t.same(sink.chunks.filter((c) => c.chunk_type === 'tool_call').map((c) => [c.tool_call?.id, c.tool_call?.status]), [
    ['call-0-0', 'running'], ['call-0-0', 'completed'], ['given', 'running'], ['given', 'failed'], ['again', 'running'], ['again', 'completed']
  ])
  t.same(observed, ['completed', 'failed', 'completed'])
  const [second, third] = services.requests
  t.same(second?.messages.slice(1), [
    { role: 'assistant', content: 'Let me check. ', tool_calls: [{ id: 'call-0-0', type: 'function', function: { name: 'lookup', arguments: '{"q":1}' } }, { id: 'given', type: 'function', function: { name: 'fails', arguments: 'not json' } }] },
    { role: 'tool', tool_call_id: 'call-0-0', content: 'ran lookup' },
    { role: 'tool', tool_call_id: 'given', content: 'Error: kaboom' }
  ], 'the assistant message carries only its own round\'s text')
  t.ok(second?.tools !== undefined, 'the second round may call tools again')
  t.equal(third?.tools, undefined, 'the last round offers none')
  t.same(third?.messages.at(-2), { role: 'assistant', content: null, tool_calls: [{ id: 'again', type: 'function', function: { name: 'lookup', arguments: '{}' } }] })
  t.same(services.saved[0], { content: 'Let me check. Done.', outcome: 'done', usage: { prompt_tokens: 6, completion_tokens: 4, total_tokens: 10, reasoning_tokens: 4 }, reasoning: '' }, 'usage summed over the rounds')
})

t.test('an upstream failing mid-reply ends with one error chunk and keeps the partial reply as incomplete', async (t) => {
  const { sink, services, turn, ends } = setup([async (h) => {
    h.onText('half ')
    h.onUsage(USAGE)
    throw new UpstreamError('connection reset', null)
  }])
  t.equal(await turn.stream(), 'upstream_error')
  t.same(sink.types(), ['start', 'content', 'error'])
  t.match(sink.chunks.at(-1), { chunk_type: 'error', code: 'upstream_error', retryable: true, content: 'connection reset' })
  t.same(services.saved, [{ content: 'half ', outcome: 'incomplete', usage: USAGE, reasoning: '' }])
  t.same(ends, ['upstream_error'])
})

t.test('a provider that stops quietly when aborted does not turn the cut reply into done', async (t) => {
  const { run, sink, services, turn } = setup([async (h) => {
    h.onText('cut ')
    run.abort(new ServerShutdownError())
  }])
  t.equal(await turn.stream(), 'server_shutdown')
  t.same(sink.types(), ['start', 'content', 'error'])
  t.equal(sink.chunks.at(-1)?.code, 'server_shutdown')
  t.same(services.saved.map((s) => s.outcome), ['incomplete'])
})

t.test('nothing said, nothing stored; an internal error is reported to the observer once', async (t) => {
  const internal: unknown[] = []
  const boom = new Error('bug')
  const { sink, services, turn } = setup([async () => { throw boom }], { observer: { internalError: (err) => internal.push(err) } })
  t.equal(await turn.stream(), 'internal_error')
  t.same(services.saved, [])
  t.same(internal, [boom])
  t.match(sink.chunks.at(-1), { chunk_type: 'error', code: 'internal_error', retryable: false, content: 'Internal error while streaming' })
})

t.test('reasoning: kept bounded with the reply, streamed only when asked for', async (t) => {
  const long = 'x'.repeat(REASONING_KEPT_CHARS)
  const script: Script = async (h) => {
    h.onReasoning('think ')
    h.onReasoning(long)
    h.onText('answer')
  }
  const quiet = setup([script])
  await quiet.turn.stream()
  t.same(quiet.sink.types(), ['start', 'content', 'memory_update', 'memory_update', 'done'])
  t.equal(quiet.services.saved[0]?.reasoning, ('think ' + long).slice(0, REASONING_KEPT_CHARS))
  t.equal(quiet.services.saved[0]?.content, 'answer', 'thinking stays out of the reply')
  const shown = setup([script], { includeReasoning: true })
  await shown.turn.stream()
  t.same(shown.sink.types(), ['start', 'reasoning', 'reasoning', 'content', 'memory_update', 'memory_update', 'done'])
})

t.test('extraction\'s report is announced, and done carries its count', async (t) => {
  const memories: MemoryOp[] = [{ op: 'ADD', id: 'm1', content: 'likes tea' }]
  const written: string[] = []
  const { sink } = await (async () => {
    const s = setup([async (h) => { h.onText('ok') }], { report: { content: 'extraction_deferred', memories }, observer: { memories: (ops) => written.push(...ops.map((o) => o.op)) } })
    await s.turn.stream()
    return s
  })()
  t.match(sink.chunks.slice(-3), [
    { chunk_type: 'memory_update', content: 'extracting', memories_count: null, memories: [] },
    { chunk_type: 'memory_update', content: 'extraction_deferred', memories_count: 1, memories },
    { chunk_type: 'done', memories_count: 1 }
  ])
  t.same(written, ['ADD'])
})

t.test('a partial reply that cannot be stored still ends the stream with its own error; started is reported once', async (t) => {
  let started = 0
  const { sink, services, turn } = setup([async (h) => {
    h.onText('half ')
    throw new UpstreamError('reset', null)
  }], { observer: { started: () => { started++ } } })
  services.saveReply = async () => { throw new Error('disk full') }
  t.equal(await turn.stream(), 'upstream_error')
  t.match(sink.chunks.at(-1), { chunk_type: 'error', code: 'upstream_error' })
  t.equal(started, 1)
})

t.test('a reply whose pipe throws instead of calling onError still ends the stream with one error', async (t) => {
  const internal: unknown[] = []
  const { run, sink, services, turn, ends } = setup([async () => {}], { observer: { internalError: (err) => internal.push(err) } })
  const boom = new Error('thrown, not told')
  const throwing = new Turn(run, sink, turn.plan, { pipe: () => { throw boom } }, services)
  t.equal(await throwing.stream(), 'internal_error')
  t.same(sink.types(), ['start', 'error'])
  t.same(internal, [boom])
  t.same(ends, ['internal_error'], 'the run released once')
})

t.test('a start that throws (an observer failing) ends the stream with one error, and the reply is never piped', async (t) => {
  const boom = new Error('metrics broke')
  let piped = false
  const { sink, turn, ends } = setup([async () => { piped = true }], { observer: { started: () => { throw boom } } })
  t.equal(await turn.stream(), 'internal_error')
  t.same(sink.types(), ['start', 'error'])
  t.equal(piped, false)
  t.same(ends, ['internal_error'], 'the run released once')
})

t.test('a provider that ends a reply twice ends the turn once, as the first end said: one reply stored, one terminal event', async (t) => {
  const twice = setup([async (h) => {
    h.onText('hi')
    // The scripted reply calls onComplete again as this resolves.
    h.onComplete()
  }])
  t.equal(await twice.turn.stream(), 'done')
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(twice.services.saved.length, 1, 'the reply stored once')
  t.same(twice.sink.types(), ['start', 'content', 'memory_update', 'memory_update', 'done'])
  t.same(twice.ends, ['done'], 'the run released once')
  const late = setup([async (h) => {
    h.onText('hi')
    setImmediate(() => { h.onError(new UpstreamError('late', 502)) })
  }])
  t.equal(await late.turn.stream(), 'done')
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(late.sink.types(), ['start', 'content', 'memory_update', 'memory_update', 'done'], 'an error after the end changes nothing')
  t.same(late.ends, ['done'])
})

t.test('a tool round that fails after its reply completed still ends the turn with one error', async (t) => {
  const { sink, services, turn, ends } = setup([async (h) => {
    h.onToolCall({ id: 'c1', name: 'x', arguments: '{}' })
  }])
  services.runTool = async () => { throw new Error('registry broke') }
  t.equal(await turn.stream(), 'internal_error')
  t.match(sink.types(), ['start', 'tool_call', 'error'])
  t.same(ends, ['internal_error'])
})

t.test('a provider that ends a reply twice (an error, then complete) ends the turn with the one error', async (t) => {
  const { sink, turn, ends } = setup([async (h) => {
    h.onText('hi')
    setImmediate(() => { h.onComplete() })
    throw new UpstreamError('broke', 502)
  }])
  t.equal(await turn.stream(), 'upstream_error')
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(sink.types(), ['start', 'content', 'error'])
  t.same(ends, ['upstream_error'], 'the run released once')
})
