import type { Lease } from '../limits/concurrency.js'
import type { TokenUsage } from '../llm/provider.js'
import { newStreamId } from './token.js'
import { makeChunk } from '../protocol/chunk.js'
import { StreamStateMachine } from '../protocol/state-machine.js'
import { classifyFailure, StreamTimeoutError, type StreamOutcome } from './outcomes.js'
import { TextBuffer } from './text-buffer.js'
import type { MemoryUpdateEvent, ToolCallEvent, Turn } from '../chat/orchestrator.js'
import type { ChunkSink } from './sinks.js'

/** How much of a model's thinking is kept with its reply (in the message's metadata). */
export const REASONING_KEPT_CHARS = 32_768

/** Shared: one Error (and its stack) per released stream would be waste on the hot path. */
const RELEASED = new Error('stream released')

export interface StreamTimeouts {
  firstTokenMs: number
  idleMs: number
  maxDurationMs: number
}

/** What a run reports as it goes (metrics); every hook optional. */
export interface RunObserver {
  /** The turn's first event went out: for a stream, its 200 (a slot taken for a turn refused before it is not counted). */
  started?: () => void
  /** The first content or tool call (what a user waits for). */
  firstToken?: (seconds: number) => void
  /** The first reasoning delta of a thinking model, which may come long before the first token. */
  firstReasoning?: (seconds: number) => void
  toolCall?: (status: string) => void
  memories?: (ops: Array<{ op: string }>) => void
  /** A stream ended with internal_error: the cause, for the logs (the client sees a generic message). */
  internalError?: (err: unknown) => void
}

export interface StreamRunOptions {
  orgId: string
  /** For logs: the agent and the request that started the run. */
  agentId: string
  requestId: string
  observer?: RunObserver
  lease: Lease
  timeouts: StreamTimeouts
  /** Called exactly once, when every resource of the run is released. */
  onEnd: (run: StreamRun, outcome: StreamOutcome) => void
}

/**
 * One stream's lifetime: its abort signal (which reaches the upstream request), its timer (first
 * token, idle and total bounds), its concurrency slot and its state machine. Whatever ends it
 * (done, error, timeout, disconnect, shutdown), `#release` runs once and frees all of them.
 */
export class StreamRun {
  readonly id = newStreamId()
  readonly orgId: string
  readonly agentId: string
  readonly requestId: string
  readonly startedAt = performance.now()
  readonly state = new StreamStateMachine()
  readonly #controller = new AbortController()
  readonly #opts: StreamRunOptions
  /** One timer for all three bounds, armed for the nearest; activity only records the time. */
  #timer: NodeJS.Timeout
  /** When the last token or event came; -1 until the first. */
  #lastActivity = -1
  #sawToken = false
  #sawReasoning = false
  #sink: ChunkSink | undefined
  #usage: TokenUsage | null = null
  #outcome: StreamOutcome | undefined

  constructor (opts: StreamRunOptions) {
    this.#opts = opts
    this.orgId = opts.orgId
    this.agentId = opts.agentId
    this.requestId = opts.requestId
    // The first-token clock starts now: it also bounds opening the upstream.
    this.#timer = setTimeout(this.#onTimer, this.#nextDeadline() - this.startedAt)
  }

  /** The nearest bound: max duration, and first token or idle depending on whether anything came yet. */
  #nextDeadline (): number {
    const { firstTokenMs, idleMs, maxDurationMs } = this.#opts.timeouts
    const quiet = this.#lastActivity < 0 ? this.startedAt + firstTokenMs : this.#lastActivity + idleMs
    return Math.min(quiet, this.startedAt + maxDurationMs)
  }

  /**
   * Checks the bounds when the timer fires: activity since it was armed moved the idle bound
   * later, so it re-arms for that instead of aborting. A token costs a clock read, not a timer update.
   */
  readonly #onTimer = (): void => {
    const now = performance.now()
    const deadline = this.#nextDeadline()
    if (now < deadline) {
      this.#timer = setTimeout(this.#onTimer, deadline - now)
      return
    }
    const { firstTokenMs, idleMs, maxDurationMs } = this.#opts.timeouts
    if (now - this.startedAt >= maxDurationMs) this.abort(new StreamTimeoutError('max_duration', maxDurationMs))
    else if (this.#lastActivity < 0) this.abort(new StreamTimeoutError('first_token', firstTokenMs))
    else this.abort(new StreamTimeoutError('idle', idleMs))
  }

  /** The slot's lease id, where the coordinator names leases. */
  get leaseId (): string | undefined {
    return this.#opts.lease.id
  }

  get signal (): AbortSignal {
    return this.#controller.signal
  }

  get bufferedBytes (): number {
    return this.#sink?.bufferedBytes ?? 0
  }

  /** Token usage the model reported, summed over tool rounds (null when it reported none). */
  get usage (): TokenUsage | null {
    return this.#usage
  }

  get sent (): { events: number, bytes: number } {
    return this.#sink?.sent ?? { events: 0, bytes: 0 }
  }

  abort (reason: Error): void {
    this.#controller.abort(reason)
  }

  /** Streams an opened turn into the sink; never throws. */
  async pump (turn: Turn, sink: ChunkSink, startExtras: Record<string, unknown> = {}): Promise<StreamOutcome> {
    this.#sink = sink
    const state = this.state
    const reply = new TextBuffer()
    let reasoning = ''
    let usage: TokenUsage | null = null
    let persisted = false
    let failure = null
    try {
      state.transition('start')
      sink.start(makeChunk('start', {}, { stream_id: this.id, session_id: turn.sessionId, memories_retrieved: turn.memoriesRetrieved, ...startExtras }))
      this.#opts.observer?.started?.()
      for await (const event of turn.events) {
        this.#onActivity()
        if (event.type === 'usage') {
          usage = addUsage(usage, event.usage)
        } else if (event.type === 'text') {
          this.#onToken()
          state.transition('content')
          reply.add(event.text)
          const wait = sink.content(event.text)
          if (wait !== undefined) await wait
        } else if (event.type === 'reasoning') {
          // Thinking is upstream activity (it keeps the first-token and idle bounds at bay) but never the reply.
          this.#onReasoning()
          if (reasoning.length < REASONING_KEPT_CHARS) reasoning += event.text.slice(0, REASONING_KEPT_CHARS - reasoning.length)
          if (turn.includeReasoning) {
            state.transition('reasoning')
            const wait = sink.event(makeChunk('reasoning', { content: event.text }))
            if (wait !== undefined) await wait
          }
        } else {
          this.#onToken()
          await this.#emit(sink, event)
        }
      }
      // A provider that stops quietly on abort must not turn a cut reply into `done`.
      this.signal.throwIfAborted()
      // Stored before `done` goes out, so a client that saw `done` finds the reply in history.
      persisted = true
      const text = reply.toString()
      const message = await turn.complete(text, usage, reasoning)
      // AgentMem's clients read this turn's memory count from `done` too.
      let memoriesCount = 0
      for await (const event of turn.extract(text)) {
        this.#onActivity()
        memoriesCount = event.memories_count ?? memoriesCount
        await this.#emit(sink, event)
      }
      state.transition('done')
      sink.finish(makeChunk('done', { memories_count: memoriesCount }, { message_id: message.id, usage }))
    } catch (err) {
      failure = classifyFailure(this.signal.aborted ? this.signal.reason : err)
      if (!persisted) await turn.abandon(reply.toString(), usage).catch(() => {})
      if (failure.outcome === 'internal_error') this.#opts.observer?.internalError?.(err)
      if (state.can('error')) {
        state.transition('error')
        sink.finish(makeChunk('error', { content: failure.message }, { code: failure.code }))
      }
    }
    const outcome = failure?.outcome ?? 'done'
    this.#usage = usage
    sink.end(outcome === 'slow_consumer')
    if (state.terminated) state.close()
    this.release(outcome)
    return outcome
  }

  async #emit (sink: ChunkSink, event: ToolCallEvent | MemoryUpdateEvent): Promise<void> {
    this.state.transition(event.type)
    const observer = this.#opts.observer
    if (event.type === 'tool_call') {
      if (event.call.status !== 'running') observer?.toolCall?.(event.call.status as string)
    } else if (event.memories_count !== null) {
      observer?.memories?.(event.memories)
    }
    const chunk = event.type === 'tool_call'
      ? makeChunk('tool_call', { tool_call: event.call })
      : makeChunk('memory_update', { content: event.content, memories_count: event.memories_count }, { memories: event.memories })
    await sink.event(chunk)
  }

  #onToken (): void {
    if (this.#sawToken) return
    this.#sawToken = true
    this.#opts.observer?.firstToken?.((this.#lastActivity - this.startedAt) / 1000)
  }

  #onReasoning (): void {
    if (this.#sawReasoning) return
    this.#sawReasoning = true
    this.#opts.observer?.firstReasoning?.((this.#lastActivity - this.startedAt) / 1000)
  }

  #onActivity (): void {
    const now = performance.now()
    const first = this.#lastActivity < 0
    this.#lastActivity = now
    if (!first) return
    // The idle bound may be nearer than the first-token one the timer is armed for.
    clearTimeout(this.#timer)
    this.#timer = setTimeout(this.#onTimer, this.#nextDeadline() - now)
  }

  /** Frees slot, timers and upstream request. Safe to call from every exit path; acts once. */
  release (outcome: StreamOutcome): void {
    if (this.#outcome !== undefined) return
    this.#outcome = outcome
    clearTimeout(this.#timer)
    this.#opts.lease.release()
    // On every path but a clean finish this cuts the upstream request. After `done` the upstream
    // has ended already, and dispatching an abort nobody needs is the dearest part of a release.
    if (outcome !== 'done' && !this.signal.aborted) this.#controller.abort(RELEASED)
    this.#opts.onEnd(this, outcome)
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
