/**
 * The seam between the chat orchestrator and any model. Opening is separate from reading
 * so an upstream that refuses (401, 429, 500) becomes an HTTP error before the SSE 200 goes out.
 */
export interface AssistantToolCall {
  id: string
  type: 'function'
  function: { name: string, arguments: string }
}

export type ChatMessage =
  | { role: 'system' | 'user', content: string }
  | { role: 'assistant', content: string | null, tool_calls?: AssistantToolCall[] }
  | { role: 'tool', tool_call_id: string, content: string }

export interface TokenUsage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  /** Of the completion tokens, those a reasoning model spent thinking (when the upstream says). */
  reasoning_tokens?: number
}

/** A tool offered to the model, in OpenAI's function-calling shape. */
export interface ToolSpec {
  name: string
  description: string
  parameters: Record<string, unknown>
}

/** Tool calls arrive in fragments keyed by `index`; `id` and `name` come once, `arguments` in pieces. */
export interface ToolCallDelta {
  type: 'tool_call'
  index: number
  id?: string
  name?: string
  arguments?: string
}

export type LlmDelta =
  | { type: 'text', text: string }
  /** A reasoning model's thinking, streamed before (or between) its answer. */
  | { type: 'reasoning', text: string }
  | { type: 'usage', usage: TokenUsage }
  | ToolCallDelta

export interface LlmRequest {
  messages: ChatMessage[]
  model?: string
  temperature?: number
  maxTokens?: number
  topP?: number
  tools?: readonly ToolSpec[]
  signal: AbortSignal
}

export interface JsonRequest {
  messages: ChatMessage[]
  /** Name and JSON schema the reply must follow (structured outputs). */
  schemaName: string
  schema: Record<string, unknown>
  /** Whether an answer follows `schema`: an answer that does not counts as a failed try, and is never returned. */
  validate: (answer: unknown) => boolean
  signal: AbortSignal
}

export interface LlmProvider {
  readonly name: string
  readonly model: string
  /** Resolves once the upstream accepted the request; rejects with UpstreamError otherwise. */
  open: (request: LlmRequest) => Promise<AsyncIterable<LlmDelta>>
}

/** A provider that can also answer with schema-constrained JSON (used for memory extraction). */
export interface JsonCapableProvider extends LlmProvider {
  completeJson: (request: JsonRequest) => Promise<unknown>
}

/** Turns texts into vectors for retrieval. */
export interface Embedder {
  embed: (texts: string[], signal: AbortSignal) => Promise<number[][]>
}

/** The upstream refused or failed; `status` is its HTTP status when it answered one. */
export class UpstreamError extends Error {
  readonly status: number | null
  constructor (message: string, status: number | null, options?: ErrorOptions) {
    super(message, options)
    this.name = 'UpstreamError'
    this.status = status
  }
}
