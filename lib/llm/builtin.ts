import { setTimeout as sleep } from 'node:timers/promises'
import type { ChatMessage, LlmDelta, LlmProvider, LlmRequest } from './provider.js'

export interface BuiltinProviderOptions {
  tokenDelayMs: number
}

/**
 * Offline, deterministic model for demos, tests and benchmarks: it answers from the prompt it
 * was given (the user's message and any context), one word per token.
 */
export class BuiltinProvider implements LlmProvider {
  readonly name = 'builtin'
  readonly model = 'builtin-echo'
  readonly #delayMs: number

  constructor (opts: BuiltinProviderOptions) {
    this.#delayMs = opts.tokenDelayMs
  }

  async open (request: LlmRequest): Promise<AsyncIterable<LlmDelta>> {
    request.signal.throwIfAborted()
    return this.#generate(request.messages, request.signal)
  }

  async * #generate (messages: ChatMessage[], signal: AbortSignal): AsyncIterable<LlmDelta> {
    const tokens = tokenize(composeReply(messages))
    for (let i = 0; i < tokens.length; i++) {
      // An aborted sleep rejects with a generic AbortError; the check below rethrows the real reason.
      if (i > 0 && this.#delayMs > 0) await sleep(this.#delayMs, undefined, { signal }).catch(() => {})
      signal.throwIfAborted()
      yield { type: 'text', text: tokens[i] as string }
    }
    const completion = tokens.length
    const prompt = messages.reduce((n, m) => n + tokenize(m.content).length, 0)
    yield { type: 'usage', usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } }
  }
}

/** Words with their trailing space, so the concatenated tokens equal the reply exactly. */
export function tokenize (text: string): string[] {
  return text.match(/\S+\s*|\s+/g) ?? []
}

export function composeReply (messages: ChatMessage[]): string {
  const user = messages.findLast((m) => m.role === 'user')?.content ?? ''
  return `You said: ${user}`
}
