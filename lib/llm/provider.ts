/**
 * The seam between the chat orchestrator and any model. Opening is separate from reading
 * so an upstream that refuses (401, 429, 500) becomes an HTTP error before the SSE 200 goes out.
 */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string
}

export interface TokenUsage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
}

export type LlmDelta =
  | { type: 'text', text: string }
  | { type: 'usage', usage: TokenUsage }

export interface LlmRequest {
  messages: ChatMessage[]
  model?: string
  temperature?: number
  signal: AbortSignal
}

export interface LlmProvider {
  readonly name: string
  readonly model: string
  /** Resolves once the upstream accepted the request; rejects with UpstreamError otherwise. */
  open: (request: LlmRequest) => Promise<AsyncIterable<LlmDelta>>
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
