import { randomUUID } from 'node:crypto'
import type { Principal } from '../auth/jwt.js'
import type { LlmDelta, LlmProvider, TokenUsage } from '../llm/provider.js'
import type { ChatRequest } from '../schemas.js'
import type { Agent, Message, Store } from '../store/store.js'
import { buildPrompt } from './prompt.js'

export interface TurnContext {
  principal: Principal
  agent: Agent
  request: ChatRequest
  signal: AbortSignal
}

/**
 * One chat turn whose upstream is open: read `deltas`, then either `complete` with the whole
 * reply or `abandon` with what was said before it broke off.
 */
export interface Turn {
  readonly sessionId: string
  readonly deltas: AsyncIterable<LlmDelta>
  complete: (content: string, usage: TokenUsage | null) => Promise<Message>
  abandon: (content: string, usage: TokenUsage | null) => Promise<void>
}

export interface OrchestratorOptions {
  store: Store
  llm: LlmProvider
  historyMessages?: number
  historyCharBudget?: number
}

/** Turns a request into a prompt, opens the model, and persists both sides of the conversation. */
export class Orchestrator {
  readonly #store: Store
  readonly #llm: LlmProvider
  readonly #historyMessages: number
  readonly #historyCharBudget: number

  constructor (opts: OrchestratorOptions) {
    this.#store = opts.store
    this.#llm = opts.llm
    this.#historyMessages = opts.historyMessages ?? 20
    this.#historyCharBudget = opts.historyCharBudget ?? 16_000
  }

  async open (ctx: TurnContext): Promise<Turn> {
    const { principal, agent, request, signal } = ctx
    const sessionId = request.session_id ?? randomUUID()
    const userId = request.user_id ?? principal.userId
    const history = request.session_id === undefined
      ? []
      : await this.#store.listMessages(principal.orgId, agent.id, { sessionId, limit: this.#historyMessages })
    const deltas = await this.#llm.open({
      messages: buildPrompt({ system: agent.system, history, message: request.message, historyCharBudget: this.#historyCharBudget }),
      model: agent.llm_config.model,
      temperature: agent.llm_config.temperature,
      signal
    })
    const base = { organization_id: principal.orgId, agent_id: agent.id, user_id: userId, session_id: sessionId }
    // Persisted only once the model accepted the turn, so a 502 leaves no orphan question behind.
    await this.#store.appendMessage({ ...base, role: 'user', content: request.message, metadata: request.metadata ?? {} })
    const save = async (content: string, outcome: string, usage: TokenUsage | null): Promise<Message> =>
      await this.#store.appendMessage({ ...base, role: 'assistant', content, metadata: { outcome, usage } })
    return {
      sessionId,
      deltas,
      complete: async (content, usage) => await save(content, 'done', usage),
      // A partial reply is kept (marked incomplete) so history shows what the user saw.
      abandon: async (content, usage) => {
        if (content !== '') await save(content, 'incomplete', usage)
      }
    }
  }
}
