import { setMaxListeners } from 'node:events'
import { uuidV7 } from '../random.js'
import type { Principal } from '../auth/jwt.js'
import type { AbortSource, CancelView, CancelWatcher } from '../cancel.js'
import type { ChatMessage, LlmProvider, LlmReply, LlmRequest, TokenUsage, ToolSpec } from '../llm/provider.js'
import type { MemoryExtractor } from '../memory/extractor.js'
import type { MemoryOp, MemoryScope, MemoryService } from '../memory/service.js'
import type { ChatRequest } from '../schemas.js'
import type { Agent, Memory, Message, MessageInput } from '../store/store.js'
import type { ToolContext, ToolOutcome, ToolRegistry } from '../tools/registry.js'
import type { ExtractionReport, TurnPlan, TurnServices } from '../stream/turn.js'
import { AgentDeletedError } from '../stream/outcomes.js'
import { GroupCommit } from '../store/group-commit.js'
import { buildPrompt, memoryBlock } from './prompt.js'
import { deadlines, type DeadlineOwner } from '../timers/deadlines.js'

export interface TurnContext {
  principal: Principal
  agent: Agent
  request: ChatRequest
  /** The stream's cancellation: its signal is made only for what needs one (an upstream request, a tool). */
  cancel: CancelView
}

/** A chat turn's plan: what the pipeline reads, and what storing and extraction need. */
export interface ChatPlan extends TurnPlan {
  readonly scope: MemoryScope
  readonly userMessage: string
  /** The memories extraction decides against. */
  readonly related: Memory[]
  /** Settles once the question is stored, with the messages of its event-loop turn; the reply waits for it. */
  readonly question: Promise<void>
}

/** A turn whose upstream accepted it: its plan, and the first reply, not read yet. */
export interface OpenedTurn {
  plan: ChatPlan
  reply: LlmReply
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

/** A question whose commit failed fails its reply's save; until then nobody waits on it. */
const noWait = (): void => {}

/** A message of the turn's conversation, made from its scope when stored, so a live turn holds no copy of those ids. */
function messageOf (scope: MemoryScope, sessionId: string, role: MessageInput['role'], content: string, metadata: Record<string, unknown>): MessageInput {
  return { organization_id: scope.orgId, agent_id: scope.agentId, user_id: scope.userId, session_id: sessionId, role, content, metadata }
}

/** A turn's request to its model: `signal` is made when a provider first reads it; the built-in model watches `cancel`. */
class TurnRequest implements LlmRequest {
  readonly messages: ChatMessage[]
  readonly model: string | undefined
  readonly temperature: number | undefined
  readonly maxTokens: number | undefined
  readonly topP: number | undefined
  readonly tools: readonly ToolSpec[]
  readonly cancel: CancelView

  constructor (messages: ChatMessage[], config: Agent['llm_config'], tools: readonly ToolSpec[], cancel: CancelView) {
    this.messages = messages
    this.model = config.model
    this.temperature = config.temperature
    this.maxTokens = config.max_tokens
    this.topP = config.top_p
    this.tools = tools
    this.cancel = cancel
  }

  get signal (): AbortSignal {
    return this.cancel.signal
  }
}

/** What the turn's tools may use; their signal too is made when a tool first reads it. */
class TurnTools implements ToolContext {
  readonly scope: MemoryScope
  readonly sessionId: string
  readonly memories: MemoryService
  readonly memoryOps: MemoryOp[] = []
  readonly #abort: AbortSource

  constructor (abort: AbortSource, scope: MemoryScope, sessionId: string, memories: MemoryService) {
    this.#abort = abort
    this.scope = scope
    this.sessionId = sessionId
    this.memories = memories
  }

  get signal (): AbortSignal {
    return this.#abort.signal
  }
}

/**
 * The stream's wait for extraction: the work's memories, or why there are none (it failed, or
 * the wait ended at its bound or with the stream: client gone, timeout, cancel, shutdown, perhaps
 * while the reply was being stored, before this wait began). The work goes on either way. Its
 * bound is one of the process's deadlines, not a timer of its own per turn.
 */
class ExtractionWait implements CancelWatcher, DeadlineOwner {
  readonly settled: Promise<MemoryOp[] | 'extraction_deferred' | 'extraction_failed'>
  #settle: (outcome: MemoryOp[] | 'extraction_deferred' | 'extraction_failed') => void = noWait
  readonly #cancel: CancelView
  readonly #bound = deadlines.for(this)

  constructor (job: Promise<MemoryOp[]>, cancel: CancelView, timeoutMs: number) {
    this.#cancel = cancel
    this.settled = new Promise((resolve) => { this.#settle = resolve })
    // A failed extraction costs the turn its new memories, not its reply.
    job.then((ops) => { this.#end(ops) }, () => { this.#end('extraction_failed') })
    if (cancel.aborted) {
      this.#end('extraction_deferred')
      return
    }
    deadlines.set(this.#bound, performance.now() + timeoutMs)
    cancel.watch(this)
  }

  cancelled (): void {
    this.#end('extraction_deferred')
  }

  deadlineReached (): void {
    this.#end('extraction_deferred')
  }

  /** The first outcome counts (a promise settles once); the bound and the watch go either way. */
  #end (outcome: MemoryOp[] | 'extraction_deferred' | 'extraction_failed'): void {
    deadlines.clear(this.#bound)
    this.#cancel.unwatch(this)
    this.#settle(outcome)
  }
}

/** Bound on extraction that outlived its stream; it then gives up rather than hang a shutdown. */
const BACKGROUND_EXTRACTION_MS = 60_000

/** Turns a request into a prompt, runs the model and its tools, persists the conversation, extracts memories. */
export class Orchestrator implements TurnServices<ChatPlan> {
  readonly llm: LlmProvider
  readonly maxToolRounds: number
  readonly #opts: OrchestratorOptions
  /** Questions and replies: all of one event-loop turn are stored in one transaction. */
  readonly #messages: GroupCommit
  /**
   * Extractions still running, counted rather than kept in a Set: every turn would add and take
   * out one, and a table churned like that pins young objects once promoted (see slot-list.ts).
   */
  #background = 0
  /** Set while `drain()` waits for the count to be back to 0 (the server's close calls it once), as StreamSupervisor's. */
  #drained: (() => void) | undefined
  #bucket: { until: number, signal: AbortSignal } | undefined

  constructor (opts: OrchestratorOptions) {
    this.#opts = opts
    this.#messages = new GroupCommit(opts.memories.store)
    this.llm = opts.llm
    this.maxToolRounds = opts.maxToolRounds
  }

  /**
   * The bound for extraction work: extractions started within the same second share one timeout
   * signal (making one per turn showed in the profile), so each gets 60 to 61 s.
   */
  #backgroundSignal (): AbortSignal {
    const now = performance.now()
    if (this.#bucket === undefined || now >= this.#bucket.until) {
      const signal = AbortSignal.timeout(BACKGROUND_EXTRACTION_MS + 1000)
      // Shared on purpose: every extraction of the second listens to it (Node warns past 10).
      setMaxListeners(0, signal)
      this.#bucket = { until: now + 1000, signal }
    }
    return this.#bucket.signal
  }

  /** Resolves once extractions that outlived their streams have finished. */
  async drain (): Promise<void> {
    if (this.#background === 0) return
    await new Promise<void>((resolve) => { this.#drained = resolve })
  }

  /** Everything before the first byte: history, memories, prompt, and the upstream accepting the turn. */
  async open (ctx: TurnContext): Promise<OpenedTurn> {
    const { principal, agent, request, cancel } = ctx
    const { memories, llm, tools } = this.#opts
    const store = memories.store
    // Time-ordered, as record ids are: a new session lands at the end of the history index.
    const sessionId = request.session_id ?? uuidV7()
    const scope: MemoryScope = { orgId: principal.orgId, agentId: agent.id, userId: request.user_id ?? principal.userId }
    const history = request.session_id === undefined
      ? []
      : await store.listMessages(scope.orgId, agent.id, { sessionId, userId: scope.userId, limit: this.#opts.historyMessages ?? 20 })
    // One search serves both the prompt (top max_memories) and extraction (top 10, what it decides against).
    const maxMemories = request.max_memories ?? 10
    const found = await memories.retrieve(scope, request.message, Math.max(maxMemories, EXTRACTION_CONTEXT), cancel)
    const retrieved = found.slice(0, maxMemories)
    const messages = buildPrompt({
      system: agent.system,
      context: retrieved.length === 0 ? null : memoryBlock(retrieved.map((m) => m.content)),
      history,
      message: request.message,
      historyCharBudget: this.#opts.historyCharBudget ?? 16_000
    })
    const llmRequest = new TurnRequest(messages, agent.llm_config, tools.specs(), cancel)
    const reply = await llm.open(llmRequest)
    // Stored only once the model accepted the turn, so a 502 leaves no orphan question behind; the
    // first byte does not wait for its commit (it goes with the batch of this event-loop turn), the
    // reply does, so `done` still means both are stored. Failing, it fails the reply (see saveReply).
    // Resolved with nothing: a turn that waits long for its upstream need not hold the stored record.
    const question = this.#messages.append(messageOf(scope, sessionId, 'user', request.message, request.metadata ?? {})).then(noWait)
    question.catch(noWait)
    const plan: ChatPlan = {
      sessionId,
      memoriesRetrieved: retrieved.length,
      includeReasoning: request.include_reasoning === true,
      request: llmRequest,
      tools: new TurnTools(cancel, scope, sessionId, memories),
      scope,
      userMessage: request.message,
      related: found.slice(0, EXTRACTION_CONTEXT),
      question
    }
    return { plan, reply }
  }

  async runTool (name: string, args: string, ctx: ToolContext): Promise<ToolOutcome> {
    return await this.#opts.tools.run(name, args, ctx)
  }

  /** Through the group commit: the messages of turns that finish together are stored in one transaction. Settles once the question is stored too. */
  async saveReply (plan: ChatPlan, content: string, outcome: 'done' | 'incomplete', usage: TokenUsage | null, reasoning: string): Promise<Message> {
    const store = this.#opts.memories.store
    try {
      const reply = this.#messages.append(messageOf(plan.scope, plan.sessionId, 'assistant', content, reasoning === '' ? { outcome, usage } : { outcome, usage, reasoning }))
      return (await Promise.all([plan.question, reply]))[1]
    } catch (err) {
      // Deleting the agent took its conversation: say so instead of a bare internal error.
      if (await store.getAgent(plan.scope.orgId, plan.scope.agentId) === null) throw new AgentDeletedError()
      throw err
    }
  }

  /**
   * Starts extraction and waits for it at most `extractionTimeoutMs`, or until the stream ends:
   * extraction belongs to the conversation, not the connection, so it goes on either way.
   */
  async extract (plan: ChatPlan, reply: string, cancel: CancelView): Promise<ExtractionReport> {
    const { memories, extractor, extractionTimeoutMs } = this.#opts
    const { scope, sessionId } = plan
    const toolOps = plan.tools.memoryOps
    const signal = this.#backgroundSignal()
    const job = (async () => {
      // What tools saved during the turn counts as existing too, so it is not added twice.
      const saved = toolOps.length === 0 ? [] : await memories.store.getMemoriesByIds(scope.orgId, toolOps.map((op) => op.id))
      const existing = [...plan.related, ...saved]
      const decisions = await extractor.extract({ userMessage: plan.userMessage, reply, existing }, signal)
      return await memories.apply(scope, sessionId, decisions, existing, signal)
    })()
    this.#background++
    const report = this.#opts.onExtraction
    const done = (): void => { if (--this.#background === 0) this.#drained?.() }
    job.then(() => { done(); report?.('ok') }, (err: unknown) => { done(); report?.('failed', err) })
    const ops = await new ExtractionWait(job, cancel, extractionTimeoutMs).settled
    if (typeof ops === 'string') return { content: ops, memories: toolOps }
    return { content: null, memories: [...toolOps, ...ops] }
  }
}
