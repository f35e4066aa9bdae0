import OpenAI from 'openai'
import type { ChatCompletionChunk, ChatCompletionMessageParam } from 'openai/resources/chat/completions'
import {
  UpstreamError, type Embedder, type JsonCapableProvider, type JsonRequest, type LlmDelta, type LlmRequest, type ToolSpec
} from './provider.js'

export interface OpenAiProviderOptions {
  apiKey: string
  baseURL?: string
  model: string
  embeddingModel?: string
}

const toTools = (tools: readonly ToolSpec[]): OpenAI.Chat.Completions.ChatCompletionTool[] =>
  tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }))

/** Any OpenAI-compatible backend (OpenAI, Azure, Ollama, vLLM, Gemini compat) through the official SDK. */
export class OpenAiProvider implements JsonCapableProvider, Embedder {
  readonly name = 'openai'
  readonly model: string
  readonly #client: OpenAI
  readonly #embeddingModel: string | undefined

  constructor (opts: OpenAiProviderOptions) {
    this.model = opts.model
    this.#embeddingModel = opts.embeddingModel
    // No SDK retries: a retry with backoff would hold a stream slot silently; the client sees 502 and decides.
    this.#client = new OpenAI({ apiKey: opts.apiKey, baseURL: opts.baseURL, maxRetries: 0 })
  }

  async open (request: LlmRequest): Promise<AsyncIterable<LlmDelta>> {
    let stream: AsyncIterable<ChatCompletionChunk>
    try {
      stream = await this.#client.chat.completions.create({
        model: request.model ?? this.model,
        messages: request.messages as ChatCompletionMessageParam[],
        temperature: request.temperature,
        tools: request.tools === undefined || request.tools.length === 0 ? undefined : toTools(request.tools),
        stream: true,
        stream_options: { include_usage: true }
      }, { signal: request.signal })
    } catch (err) {
      throw toUpstreamError(err)
    }
    return readDeltas(stream, request.signal)
  }

  async completeJson (request: JsonRequest): Promise<unknown> {
    try {
      const completion = await this.#client.chat.completions.create({
        model: this.model,
        messages: request.messages as ChatCompletionMessageParam[],
        response_format: { type: 'json_schema', json_schema: { name: request.schemaName, schema: request.schema, strict: true } }
      }, { signal: request.signal })
      return JSON.parse(completion.choices[0]?.message.content ?? 'null')
    } catch (err) {
      throw toUpstreamError(err)
    }
  }

  async embed (texts: string[], signal: AbortSignal): Promise<number[][]> {
    try {
      const res = await this.#client.embeddings.create({ model: this.#embeddingModel as string, input: texts }, { signal })
      return res.data.sort((a, b) => a.index - b.index).map((d) => d.embedding)
    } catch (err) {
      throw toUpstreamError(err)
    }
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
      const delta = chunk.choices?.[0]?.delta
      const text = delta?.content
      if (typeof text === 'string' && text.length > 0) yield { type: 'text', text }
      for (const call of delta?.tool_calls ?? []) {
        yield { type: 'tool_call', index: call.index, id: call.id, name: call.function?.name, arguments: call.function?.arguments }
      }
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

