import type { CancelView } from '../cancel.js'

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

/** A call the model made, whole: providers reassemble the fragments their wire format sends. */
export interface ToolCall {
  /** Empty when the upstream named none; the turn names it then. */
  id: string
  name: string
  arguments: string
}

/**
 * What an upstream reply is pushed into, in the style of undici's dispatch handlers: each `on…`
 * runs synchronously and does not throw, and the reply ends with exactly one `onComplete` or
 * `onError`, never followed by anything. While the handler cannot take more (its reader is slow)
 * `paused` holds a promise, and the provider reads nothing more from its upstream until it settles,
 * so a slow reader slows the upstream instead of growing a buffer. No promise spans the reply: a
 * stream waiting on its model holds the handler and the reply, not a chain of reactions (some
 * 600 bytes a stream when the end was a promise the turn chained on).
 */
export interface ReplyHandler {
  readonly paused: Promise<void> | null
  onText: (text: string) => void
  /** A reasoning model's thinking, streamed before (or between) its answer. */
  onReasoning: (text: string) => void
  /** Pushed once the call's arguments are complete. */
  onToolCall: (call: ToolCall) => void
  onUsage: (usage: TokenUsage) => void
  /** The whole reply was pushed. */
  onComplete: () => void
  /** The reply broke off: UpstreamError, or the signal's reason once aborted. */
  onError: (err: unknown) => void
}

/** An upstream reply that was accepted and is not read yet. */
export interface LlmReply {
  /** Pushes the whole reply into `handler`, ending with `onComplete` or `onError` (perhaps before it returns). */
  pipe: (handler: ReplyHandler) => void
}

export interface LlmRequest {
  messages: ChatMessage[]
  model?: string
  temperature?: number
  maxTokens?: number
  topP?: number
  tools?: readonly ToolSpec[]
  /** Aborted when the turn is cancelled (disconnect, timeout, shutdown). */
  readonly signal: AbortSignal
  /**
   * The same cancellation, where the caller has it without an AbortSignal: the server's requests
   * make `signal` on first read, so a provider that needs none (the built-in model) watches this.
   */
  readonly cancel?: CancelView
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
  open: (request: LlmRequest) => Promise<LlmReply>
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
  /** Its entry in STREAM_ENDINGS (lib/stream/outcomes.ts). */
  readonly code = 'upstream_error'
  readonly status: number | null
  constructor (message: string, status: number | null, options?: ErrorOptions) {
    super(message, options)
    this.name = 'UpstreamError'
    this.status = status
  }

  /** What its HTTP error says beside the message. */
  get details (): { upstream_status: number | null } {
    return { upstream_status: this.status }
  }
}
