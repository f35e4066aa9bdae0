import { setTimeout as sleep } from 'node:timers/promises'
import type { ChatMessage, LlmProvider, LlmReply, LlmRequest, ReplyHandler } from './provider.js'
import { readMemoryBlock } from '../chat/prompt.js'

export interface BuiltinProviderOptions {
  tokenDelayMs: number
}

/** A call the built-in model decides to make, from plain phrases in the user's message. */
interface PlannedCall {
  name: string
  arguments: Record<string, unknown>
}

const TOOL_PHRASES: Array<[RegExp, (m: RegExpExecArray) => PlannedCall]> = [
  [/^\s*remember\b[:,]?\s*(?:that\s+)?(.+)$/is, (m) => ({ name: 'save_memory', arguments: { content: (m[1] as string).trim() } })],
  [/what do you (?:remember|know) about (.+?)\s*\??\s*$/is, (m) => ({ name: 'search_memory', arguments: { query: m[1] as string } })],
  [/\bwhat time is it\b/i, () => ({ name: 'current_time', arguments: {} })]
]

/**
 * Offline, deterministic model for demos, tests and benchmarks. It answers from the prompt it
 * was given (the user's message and the memories in its context), one word per token, and
 * calls the offered tools for "remember …", "what do you remember about …" and "what time is it".
 */
export class BuiltinProvider implements LlmProvider {
  readonly name = 'builtin'
  readonly model = 'builtin-echo'
  readonly #delayMs: number

  constructor (opts: BuiltinProviderOptions) {
    this.#delayMs = opts.tokenDelayMs
  }

  async open (request: LlmRequest): Promise<LlmReply> {
    request.signal.throwIfAborted()
    // Not an async wrapper: a suspended frame less for every stream that waits on its model.
    return { pipe: (handler) => this.#generate(request, handler) }
  }

  async #generate (request: LlmRequest, handler: ReplyHandler): Promise<void> {
    const { messages, signal } = request
    const offered = new Set(request.tools?.map((t) => t.name))
    const call = messages.at(-1)?.role === 'user' ? planCall(messages, offered) : null
    let completion = 0
    if (call !== null) {
      handler.onToolCall({ id: `call-builtin-${Date.now()}`, name: call.name, arguments: JSON.stringify(call.arguments) })
      completion = 1
    } else {
      const tokens = tokenize(composeReply(messages))
      for (let i = 0; i < tokens.length; i++) {
        // An aborted sleep rejects with a generic AbortError; the check below rethrows the real reason.
        if (i > 0 && this.#delayMs > 0) await sleep(this.#delayMs, undefined, { signal }).catch(() => {})
        signal.throwIfAborted()
        handler.onText(tokens[i] as string)
        const paused = handler.paused
        if (paused !== null) await paused
      }
      completion = tokens.length
    }
    const prompt = messages.reduce((n, m) => n + tokenize(m.content ?? '').length, 0)
    handler.onUsage({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion })
  }
}

function planCall (messages: ChatMessage[], offered: Set<string>): PlannedCall | null {
  const text = messages.at(-1)?.content as string
  for (const [pattern, plan] of TOOL_PHRASES) {
    const match = pattern.exec(text)
    if (match === null) continue
    const call = plan(match)
    return offered.has(call.name) ? call : null
  }
  return null
}

/** Words with their trailing space, so the concatenated tokens equal the reply exactly. */
export function tokenize (text: string): string[] {
  return text.match(/\S+\s*|\s+/g) ?? []
}

export function composeReply (messages: ChatMessage[]): string {
  const last = messages.at(-1)
  if (last?.role === 'tool') {
    const calls = messages.flatMap((m) => m.role === 'assistant' && m.tool_calls !== undefined ? m.tool_calls : [])
    const name = calls.find((c) => c.id === last.tool_call_id)?.function.name
    return `I ran ${String(name)}: ${last.content}`
  }
  const user = messages.findLast((m) => m.role === 'user')?.content ?? ''
  let reply = `You said: ${user}`
  const context = messages.find((m) => m.role === 'system' && m.content.includes('<memories>'))?.content as string | undefined
  if (context !== undefined) reply += ` I remember: ${readMemoryBlock(context).join('; ')}`
  return reply
}
