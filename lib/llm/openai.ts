import OpenAI from 'openai'
import type { ChatCompletionChunk, ChatCompletionMessageParam } from 'openai/resources/chat/completions'
import {
  UpstreamError, type Embedder, type JsonCapableProvider, type JsonRequest, type LlmReply, type LlmRequest, type ReplyHandler, type TokenUsage, type ToolCall, type ToolSpec
} from './provider.js'
import { upstreamFetch } from './http-fetch.js'

export interface OpenAiProviderOptions {
  apiKey: string
  baseURL?: string
  model: string
  embeddingModel?: string
}

type JsonMode = 'json_schema' | 'json_object' | 'instruction'
const JSON_MODES: readonly JsonMode[] = ['json_schema', 'json_object', 'instruction']
/** Statuses with which a backend says it does not support the structured-output mode asked for. */
const REFUSALS = new Set([400, 415, 422, 501])

const toTools = (tools: readonly ToolSpec[]): OpenAI.Chat.Completions.ChatCompletionTool[] =>
  tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }))

/** Any OpenAI-compatible backend (OpenAI, Azure, Ollama, vLLM, Gemini compat) through the official SDK. */
export class OpenAiProvider implements JsonCapableProvider, Embedder {
  readonly name = 'openai'
  readonly model: string
  readonly #client: OpenAI
  readonly #embeddingModel: string | undefined
  /** Per model, the first structured-output mode worth trying (the one that last worked). */
  readonly #jsonModes = new Map<string, number>()

  constructor (opts: OpenAiProviderOptions) {
    this.model = opts.model
    this.#embeddingModel = opts.embeddingModel
    // No SDK retries: a retry with backoff would hold a stream slot silently; the client sees 502 and decides.
    this.#client = new OpenAI({ apiKey: opts.apiKey, baseURL: opts.baseURL, maxRetries: 0, fetch: upstreamFetch })
  }

  async open (request: LlmRequest): Promise<LlmReply> {
    let stream: AsyncIterable<ChatCompletionChunk>
    try {
      stream = await this.#client.chat.completions.create({
        model: request.model ?? this.model,
        messages: request.messages as ChatCompletionMessageParam[],
        temperature: request.temperature,
        max_tokens: request.maxTokens,
        top_p: request.topP,
        tools: request.tools === undefined || request.tools.length === 0 ? undefined : toTools(request.tools),
        stream: true,
        stream_options: { include_usage: true }
      }, { signal: request.signal })
    } catch (err) {
      throw toUpstreamError(err)
    }
    return {
      pipe: (handler) => {
        pipeChunks(stream, request.signal, handler).then(() => { handler.onComplete() }, (err: unknown) => { handler.onError(err) })
      }
    }
  }

  /**
   * Structured output that degrades instead of failing: strict `json_schema` first, then
   * `json_object`, then a plain instruction, each answer checked against the schema. Many
   * compatible backends refuse `json_schema` (400) or ignore it and answer prose; the mode that
   * worked is remembered per model, so such a backend does not pay a failing call every turn.
   */
  async completeJson (request: JsonRequest): Promise<unknown> {
    const model = this.model
    let failure: unknown
    for (let mode = this.#jsonModes.get(model) ?? 0; mode < JSON_MODES.length; mode++) {
      let answer: unknown
      try {
        answer = await this.#completeAs(JSON_MODES[mode] as JsonMode, request)
      } catch (err) {
        if (err instanceof SyntaxError) failure = new Error(`The ${JSON_MODES[mode] as string} answer is not JSON: ${err.message}`)
        else if (err instanceof UpstreamError && REFUSALS.has(err.status as number)) failure = err
        else throw err
        continue
      }
      if (request.validate(answer)) {
        this.#jsonModes.set(model, mode)
        return answer
      }
      failure = new Error(`The ${JSON_MODES[mode] as string} answer does not match the schema ${request.schemaName}`)
    }
    throw failure
  }

  async #completeAs (mode: JsonMode, request: JsonRequest): Promise<unknown> {
    const instruction: ChatCompletionMessageParam = {
      role: 'system',
      content: `Answer with one JSON object and nothing else. It must match this JSON schema: ${JSON.stringify(request.schema)}`
    }
    let text: string
    try {
      const completion = await this.#client.chat.completions.create({
        model: this.model,
        messages: mode === 'json_schema' ? request.messages as ChatCompletionMessageParam[] : [...request.messages as ChatCompletionMessageParam[], instruction],
        ...(mode === 'instruction'
          ? {}
          : { response_format: mode === 'json_object' ? { type: 'json_object' } : { type: 'json_schema', json_schema: { name: request.schemaName, schema: request.schema, strict: true } } })
      }, { signal: request.signal })
      text = completion.choices[0]?.message.content ?? 'null'
    } catch (err) {
      throw toUpstreamError(err)
    }
    // A plain answer may wrap its JSON in prose or a code fence: read from the first brace to the last.
    return JSON.parse(mode === 'instruction' && text.includes('{') ? text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1) : text)
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

/** A delta as reasoning-capable compatible servers send it: the SDK's type lacks their fields. */
type ReasoningDelta = ChatCompletionChunk.Choice.Delta & { reasoning_content?: unknown, reasoning?: unknown }

/** Adds a fragment to a call being streamed; some servers resend the whole string instead of a piece. */
function accumulate (call: ToolCall, fragment: ChatCompletionChunk.Choice.Delta.ToolCall): void {
  if (fragment.id !== undefined) call.id = fragment.id
  if (fragment.function?.name !== undefined) call.name = fragment.function.name
  const piece = fragment.function?.arguments ?? ''
  call.arguments = call.arguments !== '' && piece.startsWith(call.arguments) ? piece : call.arguments + piece
}

/** Most chunks carry no tool-call fragments: one shared empty list, not one per chunk. */
const NO_FRAGMENTS: readonly ChatCompletionChunk.Choice.Delta.ToolCall[] = []

/** OpenAI's chunks pushed into `handler`: tool calls whole once the reply ends, in the order of their index. */
async function pipeChunks (stream: AsyncIterable<ChatCompletionChunk>, signal: AbortSignal, handler: ReplyHandler): Promise<void> {
  const calls: ToolCall[] = []
  try {
    for await (const chunk of stream) {
      // Some compatible servers send keep-alive chunks without choices, or a role-only first delta.
      const delta = chunk.choices?.[0]?.delta as ReasoningDelta | undefined
      // DeepSeek, vLLM, SGLang and LM Studio name it reasoning_content; OpenRouter, Ollama and gpt-oss servers reasoning.
      const thought = delta?.reasoning_content ?? delta?.reasoning
      if (typeof thought === 'string' && thought.length > 0) handler.onReasoning(thought)
      const text = delta?.content
      if (typeof text === 'string' && text.length > 0) handler.onText(text)
      for (const fragment of delta?.tool_calls ?? NO_FRAGMENTS) accumulate(calls[fragment.index] ??= { id: '', name: '', arguments: '' }, fragment)
      if (chunk.usage != null) {
        const { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total } = chunk.usage
        const reasoning = chunk.usage.completion_tokens_details?.reasoning_tokens
        const usage: TokenUsage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total }
        if (typeof reasoning === 'number') usage.reasoning_tokens = reasoning
        handler.onUsage(usage)
      }
      const paused = handler.paused
      if (paused !== null) await paused
    }
  } catch (err) {
    throw toUpstreamError(err)
  }
  // The SDK ends iteration quietly when its request is aborted; a cut reply must not look complete.
  signal.throwIfAborted()
  // Indexes a server skipped leave holes; Object.values reads the calls that came.
  for (const call of Object.values(calls)) handler.onToolCall(call)
}
