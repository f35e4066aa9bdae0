import type { CancelView } from '../cancel.js'
import type { EveryKey } from '../every-key.js'
import type { ChatMessage, LlmProvider, LlmReply, LlmRequest, ReplyHandler, TokenUsage, ToolCall } from '../llm/provider.js'
import type { MemoryOp } from '../memory/service.js'
import { makeChunk, type StreamChunk, type ToolCallInfo } from '../protocol/chunk.js'
import type { Message } from '../store/store.js'
import type { ToolContext, ToolOutcome } from '../tools/registry.js'
import { classifyFailure, STREAM_ENDINGS, type StreamFailure, type StreamOutcome } from './outcomes.js'
import type { StreamRun } from './run.js'
import type { ChunkSink } from './sinks.js'
import { TextBuffer } from './text-buffer.js'

/** How much of a model's thinking is kept with its reply (in the message's metadata). */
export const REASONING_KEPT_CHARS = 32_768

/** What a turn was opened with: the facts the pipeline reads (a services implementation may carry more). */
export interface TurnPlan {
  readonly sessionId: string
  readonly memoriesRetrieved: number
  /** The client asked to watch the model think (`include_reasoning`). */
  readonly includeReasoning: boolean
  /** The request the first reply answers; tool rounds send it again with their results. */
  readonly request: LlmRequest
  /** What the turn's tools may use; the memories they save are announced with extraction's. */
  readonly tools: ToolContext
}

/** What extraction tells the stream: the memories written, or why there are none beyond the tools' (`extraction_deferred`, `extraction_failed`). */
export interface ExtractionReport {
  content: string | null
  memories: MemoryOp[]
}

/** What a turn needs from the rest of the server; an interface, so the pipeline runs in tests with fakes. */
export interface TurnServices<P extends TurnPlan> {
  readonly llm: Pick<LlmProvider, 'open'>
  readonly maxToolRounds: number
  runTool: (name: string, args: string, ctx: ToolContext) => Promise<ToolOutcome>
  /** Stores the assistant's reply: `done`, or `incomplete` with what was said before it broke off. */
  saveReply: (plan: P, content: string, outcome: 'done' | 'incomplete', usage: TokenUsage | null, reasoning: string) => Promise<Message>
  /** Memories from the stored reply; resolves once the stream should stop waiting (the work may go on), or once `cancel` is aborted. */
  extract: (plan: P, reply: string, cancel: CancelView) => Promise<ExtractionReport>
}

const noWait = (): void => {}

/** A round's calls until it makes one (most make none): shared, so a turn holds no empty array. */
const NO_CALLS: readonly ToolCall[] = []

/**
 * One chat turn, from its open upstream to its terminal event. The provider pushes text,
 * reasoning, whole tool calls and usage into it (it is the provider's `ReplyHandler`); it writes
 * each to the sink at once, holds the one reply buffer and the usage, runs the tool rounds, stores
 * the reply before `done` and waits for extraction. A sink that must drain pauses the provider.
 */
export class Turn<P extends TurnPlan = TurnPlan> implements ReplyHandler {
  readonly plan: P
  paused: Promise<void> | null = null
  readonly #run: StreamRun
  readonly #sink: ChunkSink
  readonly #services: TurnServices<P>
  #next: LlmReply
  readonly #reply = new TextBuffer()
  #reasoning = ''
  #usage: TokenUsage | null = null
  #calls = NO_CALLS
  /** The tool rounds so far, and where this round's words began in the reply. */
  #round = 0
  #saidBefore = 0
  /** The conversation sent again with tool results: made on the first tool round. */
  #messages: ChatMessage[] | null = null
  /** The reply was handed to storage as done: a failure after that keeps no incomplete copy. */
  #persisted = false
  /** A reply is being piped: its first end counts, and any after it is ignored (a provider of someone else's may misbehave). */
  #piping = false
  /** Set by `stream()`, for a caller that waits for the outcome. */
  #reportOutcome: ((outcome: StreamOutcome) => void) | null = null

  constructor (run: StreamRun, sink: ChunkSink, plan: P, first: LlmReply, services: TurnServices<P>) {
    this.#run = run
    this.#sink = sink
    this.plan = plan
    this.#next = first
    this.#services = services
    run.use(sink)
  }

  onText (text: string): void {
    this.#run.token()
    this.#run.state.transition('content')
    this.#reply.add(text)
    this.#waitFor(this.#sink.content(text))
  }

  onReasoning (text: string): void {
    // Thinking is upstream activity (it keeps the first-token and idle bounds at bay) but never the reply.
    this.#run.reasoning()
    if (this.#reasoning.length < REASONING_KEPT_CHARS) this.#reasoning += text.slice(0, REASONING_KEPT_CHARS - this.#reasoning.length)
    if (!this.plan.includeReasoning) return
    this.#run.state.transition('reasoning')
    this.#waitFor(this.#sink.event(makeChunk('reasoning', { content: text })))
  }

  onToolCall (call: ToolCall): void {
    this.#run.activity()
    this.#calls = this.#calls.concat(call)
  }

  onUsage (usage: TokenUsage): void {
    this.#run.activity()
    this.#usage = addUsage(this.#usage, usage)
  }

  /** Pauses the provider until `wait` settles (after any wait already pending). */
  #waitFor (wait: Promise<void> | undefined): void {
    if (wait === undefined) return
    const before = this.paused
    const paused: Promise<void> = (before === null ? wait : before.then(() => wait)).then(() => {
      if (this.paused === paused) this.paused = null
    })
    this.paused = paused
  }

  /**
   * Streams the turn into its sink and ends the run; never throws. Nothing is suspended while a
   * reply is piped and no promise waits on it: the provider ends each round by calling
   * `onComplete` or `onError`, so a stream waiting on its model holds the Turn and the reply.
   */
  start (startExtras: Record<string, unknown> = {}): void {
    const run = this.#run
    try {
      run.state.transition('start')
      this.#sink.start(makeChunk('start', {}, { stream_id: run.id, session_id: this.plan.sessionId, memories_retrieved: this.plan.memoriesRetrieved, ...startExtras }))
      run.observer.started?.()
    } catch (err) {
      void this.#fail(err)
      return
    }
    this.#pipeRound()
  }

  /** `start`, for a caller that waits for the outcome (the one-shot route, tests). */
  stream (startExtras: Record<string, unknown> = {}): Promise<StreamOutcome> {
    const outcome = new Promise<StreamOutcome>((resolve) => { this.#reportOutcome = resolve })
    this.start(startExtras)
    return outcome
  }

  /** Pipes the model's reply of this round; `onComplete` runs the calls it made. */
  #pipeRound (): void {
    this.#saidBefore = this.#reply.length
    this.#calls = NO_CALLS
    this.#piping = true
    try {
      this.#next.pipe(this)
    } catch (err) {
      this.onError(err)
    }
  }

  /** The round's reply ended whole: its calls run and the next round is piped, or the turn finishes. */
  onComplete (): void {
    if (!this.#piping) return
    this.#piping = false
    const round = this.#round++
    if (this.#calls.length === 0 || round >= this.#services.maxToolRounds) {
      void this.#finish()
      return
    }
    this.#runCalls(round).then(() => { this.#pipeRound() }, (err: unknown) => { void this.#fail(err) })
  }

  onError (err: unknown): void {
    if (!this.#piping) return
    this.#piping = false
    void this.#fail(err)
  }

  /** Runs the calls the model made in `round`, sends the results back and opens the next reply. */
  async #runCalls (round: number): Promise<void> {
    const services = this.#services
    const made = this.#calls
    const request = this.plan.request
    const messages = this.#messages ??= [...request.messages]
    made.forEach((c, i) => { if (c.id === '') c.id = `call-${round}-${i}` })
    const said = this.#reply.length === this.#saidBefore ? null : this.#reply.toString().slice(this.#saidBefore)
    messages.push({
      role: 'assistant',
      content: said,
      tool_calls: made.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }))
    })
    for (const call of made) {
      this.#run.token()
      await this.#emit(makeChunk('tool_call', { tool_call: { id: call.id, tool_name: call.name, arguments: parseOrRaw(call.arguments), status: 'running' } }))
      const outcome = await services.runTool(call.name, call.arguments, this.plan.tools)
      const info: ToolCallInfo = outcome.ok
        ? { id: call.id, tool_name: call.name, arguments: outcome.args, status: 'completed', result: outcome.result }
        : { id: call.id, tool_name: call.name, arguments: outcome.args, status: 'failed', result: null, error: outcome.error }
      this.#run.token()
      this.#run.observer.toolCall?.(outcome.ok ? 'completed' : 'failed')
      await this.#emit(makeChunk('tool_call', { tool_call: info }))
      messages.push({ role: 'tool', tool_call_id: call.id, content: outcome.ok ? outcome.result : `Error: ${outcome.error}` })
    }
    // The last round offers no tools, so the model has to answer in words.
    const last = round + 1 >= services.maxToolRounds
    // Key by key, not a spread and then keys (see EveryKey); `signal` is read here: a request may
    // make it on first read.
    const next: EveryKey<LlmRequest> = {
      messages, model: request.model, temperature: request.temperature, maxTokens: request.maxTokens, topP: request.topP,
      tools: last ? undefined : request.tools, signal: request.signal, cancel: request.cancel
    }
    this.#next = await services.llm.open(next)
  }

  /** After the last round: the reply stored, extraction waited for, `done`. */
  async #finish (): Promise<StreamOutcome> {
    const run = this.#run
    const sink = this.#sink
    const { state, cancel } = run
    const plan = this.plan
    try {
      // A provider that stops quietly on abort must not turn a cut reply into `done`.
      cancel.throwIfAborted()
      // Stored before `done` goes out, so a client that saw `done` finds the reply in history.
      this.#persisted = true
      sink.holdForEnding()
      const text = this.#reply.toString()
      const message = await this.#services.saveReply(plan, text, 'done', this.#usage, this.#reasoning)
      // Stored as done, so the turn ends with `done` whatever stops it now (shutdown, a timeout, a
      // cancel, the client leaving): that cuts the wait for extraction, not the outcome. Every reader
      // and the history then agree, and no client retries a reply that is already kept.
      run.activity()
      await this.#emit(makeChunk('memory_update', { content: 'extracting' }, { memories: [] }))
      const report = await this.#services.extract(plan, text, cancel)
      run.activity()
      const memoriesCount = report.memories.length
      if (memoriesCount > 0) run.observer.memories?.(report.memories)
      await this.#emit(makeChunk('memory_update', { content: report.content, memories_count: memoriesCount }, { memories: report.memories }))
      state.transition('done')
      // AgentMem's clients read this turn's memory count from `done` too.
      sink.finish(makeChunk('done', { memories_count: memoriesCount }, { message_id: message.id, usage: this.#usage }))
    } catch (err) {
      return await this.#fail(err)
    }
    return this.#end(null)
  }

  /** Any failure, from the start event to `done`: the partial reply kept, one `error` event. */
  async #fail (err: unknown): Promise<StreamOutcome> {
    const run = this.#run
    const { state, cancel } = run
    const failure = classifyFailure(cancel.aborted ? cancel.reason : err)
    // A partial reply is kept (marked incomplete) so history shows what the user saw.
    if (!this.#persisted && this.#reply.length > 0) {
      await this.#services.saveReply(this.plan, this.#reply.toString(), 'incomplete', this.#usage, '').catch(noWait)
    }
    if (failure.outcome === 'internal_error') run.observer.internalError?.(err)
    if (state.can('error')) {
      state.transition('error')
      this.#sink.finish(makeChunk('error', { content: failure.message }, { code: failure.code, retryable: STREAM_ENDINGS[failure.code].retryable }))
    }
    return this.#end(failure)
  }

  #end (failure: StreamFailure | null): StreamOutcome {
    const run = this.#run
    const outcome = failure?.outcome ?? 'done'
    this.#sink.end(outcome === 'slow_consumer')
    if (run.state.terminated) run.state.close()
    run.release(outcome, this.#usage)
    this.#reportOutcome?.(outcome)
    return outcome
  }

  async #emit (chunk: StreamChunk): Promise<void> {
    this.#run.state.transition(chunk.chunk_type)
    await this.#sink.event(chunk)
  }
}

function parseOrRaw (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

function addUsage (a: TokenUsage | null, b: TokenUsage): TokenUsage {
  if (a === null) return b
  const sum: TokenUsage = {
    prompt_tokens: a.prompt_tokens + b.prompt_tokens,
    completion_tokens: a.completion_tokens + b.completion_tokens,
    total_tokens: a.total_tokens + b.total_tokens
  }
  const reasoning = [a.reasoning_tokens, b.reasoning_tokens].filter((n) => n !== undefined)
  if (reasoning.length > 0) sum.reasoning_tokens = reasoning.reduce((x, y) => x + y)
  return sum
}
