import OpenAI from 'openai'
import type { ChatCompletionChunk } from 'openai/resources/chat/completions'
import { UpstreamError, type LlmDelta, type LlmProvider, type LlmRequest } from './provider.js'

export interface OpenAiProviderOptions {
  apiKey: string
  baseURL?: string
  model: string
}

/** Any OpenAI-compatible backend (OpenAI, Azure, Ollama, vLLM, Gemini compat) through the official SDK. */
export class OpenAiProvider implements LlmProvider {
  readonly name = 'openai'
  readonly model: string
  readonly #client: OpenAI

  constructor (opts: OpenAiProviderOptions) {
    this.model = opts.model
    // No SDK retries: a retry with backoff would hold a stream slot silently; the client sees 502 and decides.
    this.#client = new OpenAI({ apiKey: opts.apiKey, baseURL: opts.baseURL, maxRetries: 0 })
  }

  async open (request: LlmRequest): Promise<AsyncIterable<LlmDelta>> {
    let stream: AsyncIterable<ChatCompletionChunk>
    try {
      stream = await this.#client.chat.completions.create({
        model: request.model ?? this.model,
        messages: request.messages,
        temperature: request.temperature,
        stream: true,
        stream_options: { include_usage: true }
      }, { signal: request.signal })
    } catch (err) {
      throw toUpstreamError(err)
    }
    return readDeltas(stream, request.signal)
  }
}

function toUpstreamError (err: unknown): UpstreamError {
  // Connection failures are APIErrors too, but without a status.
  if (err instanceof OpenAI.APIError && err.status !== undefined) {
    return new UpstreamError(`LLM upstream answered ${err.status}: ${err.message}`, err.status, { cause: err })
  }
  return new UpstreamError(`LLM upstream failed: ${(err as Error).message}`, null, { cause: err })
}

async function * readDeltas (stream: AsyncIterable<ChatCompletionChunk>, signal: AbortSignal): AsyncIterable<LlmDelta> {
  try {
    for await (const chunk of stream) {
      // Some compatible servers send keep-alive chunks without choices, or a role-only first delta.
      const text = chunk.choices?.[0]?.delta?.content
      if (typeof text === 'string' && text.length > 0) yield { type: 'text', text }
      if (chunk.usage != null) {
        const { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total } = chunk.usage
        yield { type: 'usage', usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total } }
      }
    }
  } catch (err) {
    throw toUpstreamError(err)
  }
  // The SDK ends iteration quietly when its request is aborted; a cut reply must not look complete.
  signal.throwIfAborted()
}
