import { randomUUID } from 'node:crypto'
import type { Principal } from '../auth/jwt.js'
import type { ChatMessage, LlmDelta, LlmProvider, TokenUsage, ToolCallDelta } from '../llm/provider.js'
import type { MemoryExtractor } from '../memory/extractor.js'
import type { MemoryOp, MemoryScope, MemoryService } from '../memory/service.js'
import type { ChatRequest } from '../schemas.js'
import type { ToolCallInfo } from '../protocol/chunk.js'
import type { Agent, Memory, Message } from '../store/store.js'
import type { ToolRegistry } from '../tools/registry.js'
import { buildPrompt, memoryBlock } from './prompt.js'
import { AgentDeletedError } from '../stream/outcomes.js'
import { TextBuffer } from '../stream/text-buffer.js'

export interface TurnContext {
  principal: Principal
  agent: Agent
  request: ChatRequest
  signal: AbortSignal
}

/** What a turn produces, in order: text and tool calls while the model works, then memory updates. */
export interface ToolCallEvent { type: 'tool_call', call: ToolCallInfo }
export interface MemoryUpdateEvent { type: 'memory_update', content: string | null, memories_count: number | null, memories: MemoryOp[] }
export type TurnEvent =
  | { type: 'text', text: string }
  | { type: 'reasoning', text: string }
  | { type: 'usage', usage: TokenUsage }
  | ToolCallEvent
  | MemoryUpdateEvent

/**
 * One chat turn whose upstream is open. Read `events` (text and tool calls across tool rounds),
 * then `complete` with the whole reply (which stores it) and read `extract`, or `abandon` with
 * what was said before it broke off.
 */
export interface Turn {
  readonly sessionId: string
  readonly memoriesRetrieved: number
  /** The client asked to watch the model think (`include_reasoning`). */
  readonly includeReasoning: boolean
  readonly events: AsyncIterable<TurnEvent>
  /** Stores the reply; `reasoning` (bounded) goes into its metadata, never into its content. */
  complete: (content: string, usage: TokenUsage | null, reasoning: string) => Promise<Message>
  abandon: (content: string, usage: TokenUsage | null) => Promise<void>
  extract: (content: string) => AsyncIterable<MemoryUpdateEvent>
}

export interface OrchestratorOptions {
  memories: MemoryService
  llm: LlmProvider
  tools: ToolRegistry
  extractor: MemoryExtractor
  maxToolRounds: number
  /** How long the stream waits for extraction before ending; the work itself goes on. */
  extractionTimeoutMs: number
  /** Hears how every extraction ended (the work, not the stream's wait for it): for metrics and logs. */
  onExtraction?: (outcome: 'ok' | 'failed', err?: unknown) => void
  historyMessages?: number
  historyCharBudget?: number
}

/** How many of the most similar memories extraction decides against. */
const EXTRACTION_CONTEXT = 10

/** Bound on extraction that outlived its stream; it then gives up rather than hang a shutdown. */
const BACKGROUND_EXTRACTION_MS = 60_000

interface PendingCall {
  id: string
  name: string
  arguments: string
}

/** Adds a fragment to a call being streamed; some providers resend the whole string instead of a piece. */
function accumulate (calls: PendingCall[], d: ToolCallDelta): void {
  const call = calls[d.index] ??= { id: '', name: '', arguments: '' }
  if (d.id !== undefined) call.id = d.id
  if (d.name !== undefined) call.name = d.name
  const piece = d.arguments ?? ''
  call.arguments = call.arguments !== '' && piece.startsWith(call.arguments) ? piece : call.arguments + piece
}


/** Turns a request into a prompt, runs the model and its tools, persists the conversation, extracts memories. */
export class Orchestrator {
  readonly #opts: OrchestratorOptions
  readonly #background = new Set<Promise<unknown>>()
  #bucket: { until: number, signal: AbortSignal } | undefined

  constructor (opts: OrchestratorOptions) {
    this.#opts = opts
  }

  /**
   * The bound for extraction work: extractions started within the same second share one timeout
   * signal (making one per turn showed in the profile), so each gets 60 to 61 s.
   */
  #backgroundSignal (): AbortSignal {
    const now = performance.now()
    if (this.#bucket === undefined || now >= this.#bucket.until) {
      this.#bucket = { until: now + 1000, signal: AbortSignal.timeout(BACKGROUND_EXTRACTION_MS + 1000) }
    }
    return this.#bucket.signal
  }

  /** Resolves once extractions that outlived their streams have finished. */
  async drain (): Promise<void> {
    await Promise.allSettled([...this.#background])
  }

  async open (ctx: TurnContext): Promise<Turn> {
    const { principal, agent, request, signal } = ctx
    const { memories, llm, tools } = this.#opts
    const store = memories.store
    const sessionId = request.session_id ?? randomUUID()
    const scope: MemoryScope = { orgId: principal.orgId, agentId: agent.id, userId: request.user_id ?? principal.userId }
    const history = request.session_id === undefined
      ? []
      : await store.listMessages(scope.orgId, agent.id, { sessionId, userId: scope.userId, limit: this.#opts.historyMessages ?? 20 })
    // One search serves both the prompt (top max_memories) and extraction (top 10, what it decides against).
    const maxMemories = request.max_memories ?? 10
    const found = await memories.retrieve(scope, request.message, Math.max(maxMemories, EXTRACTION_CONTEXT), signal)
    const retrieved = found.slice(0, maxMemories)
    const messages = buildPrompt({
      system: agent.system,
      context: retrieved.length === 0 ? null : memoryBlock(retrieved.map((m) => m.content)),
      history,
      message: request.message,
      historyCharBudget: this.#opts.historyCharBudget ?? 16_000
    })
    const { model, temperature, max_tokens: maxTokens, top_p: topP } = agent.llm_config
    const llmRequest = { messages, model, temperature, maxTokens, topP, tools: tools.specs(), signal }
    const first = await llm.open(llmRequest)
    const base = { organization_id: scope.orgId, agent_id: agent.id, user_id: scope.userId, session_id: sessionId }
    // Persisted only once the model accepted the turn, so a 502 leaves no orphan question behind.
    await store.appendMessage({ ...base, role: 'user', content: request.message, metadata: request.metadata ?? {} })
    const memoryOps: MemoryOp[] = []
    const save = async (content: string, outcome: string, usage: TokenUsage | null, reasoning = ''): Promise<Message> => {
      try {
        return await store.appendMessage({ ...base, role: 'assistant', content, metadata: reasoning === '' ? { outcome, usage } : { outcome, usage, reasoning } })
      } catch (err) {
        // Deleting the agent took its conversation: say so instead of a bare internal error.
        if (await store.getAgent(scope.orgId, agent.id) === null) throw new AgentDeletedError()
        throw err
      }
    }

    return {
      sessionId,
      memoriesRetrieved: retrieved.length,
      includeReasoning: request.include_reasoning === true,
      events: this.#rounds(first, llmRequest, { signal, scope, sessionId, memories, memoryOps }),
      complete: async (content, usage, reasoning) => await save(content, 'done', usage, reasoning),
      // A partial reply is kept (marked incomplete) so history shows what the user saw.
      abandon: async (content, usage) => {
        if (content !== '') await save(content, 'incomplete', usage)
      },
      extract: (content) => this.#extract(scope, sessionId, request.message, content, found.slice(0, EXTRACTION_CONTEXT), memoryOps, signal)
    }
  }

  /** The model's reply across tool rounds: stream, run the calls it made, feed results back, repeat. */
  async * #rounds (first: AsyncIterable<LlmDelta>, request: Parameters<LlmProvider['open']>[0],
    toolCtx: Parameters<ToolRegistry['run']>[2]): AsyncIterable<TurnEvent> {
    const { llm, tools, maxToolRounds } = this.#opts
    const messages: ChatMessage[] = [...request.messages]
    let deltas = first
    for (let round = 0; ; round++) {
      const calls: PendingCall[] = []
      const said = new TextBuffer()
      for await (const d of deltas) {
        if (d.type === 'tool_call') accumulate(calls, d)
        else {
          if (d.type === 'text') said.add(d.text)
          yield d
        }
      }
      const made = Object.values(calls)
      if (made.length === 0 || round >= maxToolRounds) return
      made.forEach((c, i) => { if (c.id === '') c.id = `call-${round}-${i}` })
      messages.push({
        role: 'assistant',
        content: said.length === 0 ? null : said.toString(),
        tool_calls: made.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }))
      })
      for (const call of made) {
        yield { type: 'tool_call', call: { id: call.id, tool_name: call.name, arguments: parseOrRaw(call.arguments), status: 'running' } }
        const outcome = await tools.run(call.name, call.arguments, toolCtx)
        const info: ToolCallInfo = outcome.ok
          ? { id: call.id, tool_name: call.name, arguments: outcome.args, status: 'completed', result: outcome.result }
          : { id: call.id, tool_name: call.name, arguments: outcome.args, status: 'failed', result: null, error: outcome.error }
        yield { type: 'tool_call', call: info }
        messages.push({ role: 'tool', tool_call_id: call.id, content: outcome.ok ? outcome.result : `Error: ${outcome.error}` })
      }
      // The last round offers no tools, so the model has to answer in words.
      const last = round + 1 >= maxToolRounds
      deltas = await llm.open({ ...request, messages, tools: last ? undefined : request.tools })
    }
  }

  async * #extract (scope: MemoryScope, sessionId: string, userMessage: string, reply: string, retrieved: Memory[],
    toolOps: MemoryOp[], streamSignal: AbortSignal): AsyncIterable<MemoryUpdateEvent> {
    yield { type: 'memory_update', content: 'extracting', memories_count: null, memories: [] }
    const { memories, extractor, extractionTimeoutMs } = this.#opts
    // Extraction belongs to the conversation, not the connection: a client leaving does not cancel it.
    const signal = this.#backgroundSignal()
    const job = (async () => {
      // What tools saved during the turn counts as existing too, so it is not added twice.
      const saved = await memories.store.getMemoriesByIds(scope.orgId, toolOps.map((op) => op.id))
      const existing = [...retrieved, ...saved]
      const decisions = await extractor.extract({ userMessage, reply, existing }, signal)
      return await memories.apply(scope, sessionId, decisions, existing, signal)
    })()
    this.#background.add(job)
    const report = this.#opts.onExtraction
    void job.then(() => report?.('ok'), (err: unknown) => report?.('failed', err)).finally(() => this.#background.delete(job))
    let timer: NodeJS.Timeout | undefined
    let onAbort: (() => void) | undefined
    const deferred = new Promise<'extraction_deferred'>((resolve) => { timer = setTimeout(resolve, extractionTimeoutMs, 'extraction_deferred') })
    // The stream may end while it waits (client gone, timeout, shutdown); the extraction goes on.
    const ended = new Promise<'ended'>((resolve) => {
      onAbort = () => resolve('ended')
      streamSignal.addEventListener('abort', onAbort, { once: true })
    })
    // A failed extraction costs the turn its new memories, not its reply.
    const ops = await Promise.race([job.catch(() => 'extraction_failed' as const), deferred, ended])
    clearTimeout(timer)
    streamSignal.removeEventListener('abort', onAbort as () => void)
    streamSignal.throwIfAborted()
    if (typeof ops === 'string') {
      yield { type: 'memory_update', content: ops, memories_count: toolOps.length, memories: toolOps }
      return
    }
    const all = [...toolOps, ...ops]
    yield { type: 'memory_update', content: null, memories_count: all.length, memories: all }
  }
}

function parseOrRaw (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
