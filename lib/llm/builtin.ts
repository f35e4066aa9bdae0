import type { ChatMessage, LlmProvider, LlmReply, LlmRequest, ReplyHandler } from './provider.js'
import { readMemoryBlock } from '../chat/prompt.js'
import { Cancel, type CancelView, type CancelWatcher } from '../cancel.js'
import { deadlines, type Deadline, type DeadlineOwner } from '../timers/deadlines.js'

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
    // The server's requests carry their Cancel: reading `signal` would make an AbortSignal to no end.
    const cancel = request.cancel ?? Cancel.following(request.signal)
    cancel.throwIfAborted()
    return new BuiltinReply(request, cancel, this.#delayMs)
  }
}

/**
 * One reply of the built-in model, pushed by a deadline rather than by a loop in an async function:
 * a stream waiting for its next token holds this object and one deadline, not a suspended frame
 * with its promises (the idle-capacity scenario holds thousands of them).
 */
class BuiltinReply implements LlmReply, CancelWatcher, DeadlineOwner {
  readonly #request: LlmRequest
  readonly #cancel: CancelView
  readonly #delayMs: number
  #handler: ReplyHandler | null = null
  /** The reply, cut into tokens as they go out: an idle stream holds its text, not an array of its words. */
  #text = ''
  #at = 0
  #sent = 0
  /** When the next token is due: made on the first wait (with no delay there is none). */
  #due: Deadline<DeadlineOwner> | null = null
  #listening = false
  #settled = false

  constructor (request: LlmRequest, cancel: CancelView, delayMs: number) {
    this.#request = request
    this.#cancel = cancel
    this.#delayMs = delayMs
  }

  pipe (handler: ReplyHandler): void {
    const { messages, tools } = this.#request
    this.#handler = handler
    const offered = new Set(tools?.map((t) => t.name))
    const call = messages.at(-1)?.role === 'user' ? planCall(messages, offered) : null
    if (call !== null) {
      handler.onToolCall({ id: `call-builtin-${Date.now()}`, name: call.name, arguments: JSON.stringify(call.arguments) })
      this.#settled = true
      this.#reportUsage(1)
      handler.onComplete()
      return
    }
    this.#text = composeReply(messages)
    this.#emit()
  }

  /** Pushes tokens until one has to wait: for a paused handler, or for the delay between tokens. */
  #emit (): void {
    const cancel = this.#cancel
    const handler = this.#handler as ReplyHandler
    try {
      while (!this.#settled) {
        if (cancel.aborted) return this.#fail(cancel.reason)
        if (this.#at === this.#text.length) return this.#succeed()
        handler.onText(this.#nextToken())
        // Paused after the last token too: the reply ends once the reader caught up, as a relayed one does.
        const paused = handler.paused
        if (paused !== null) {
          this.#listen()
          paused.then(() => { this.#afterToken() }, (err: unknown) => { this.#fail(err) })
          return
        }
        if (this.#delayMs > 0 && this.#at < this.#text.length) return this.#afterToken()
      }
    } catch (err) {
      // A handler must not throw; one that does ends the reply rather than a deadline's callback.
      this.#fail(err)
    }
  }

  /** The token at `#at` (a reply never ends inside one: TOKEN matches any non-empty rest); `test` builds no match array. */
  #nextToken (): string {
    const at = this.#at
    TOKEN_AT.lastIndex = at
    TOKEN_AT.test(this.#text)
    this.#at = TOKEN_AT.lastIndex
    this.#sent++
    return this.#text.slice(at, this.#at)
  }

  /** The next token (or the end): after the delay, or at once. */
  #afterToken (): void {
    if (this.#settled) return
    if (this.#delayMs === 0 || this.#at === this.#text.length) return this.#emit()
    this.#listen()
    // One deadline for the whole reply, set again per token.
    deadlines.set(this.#due ??= deadlines.for(this), performance.now() + this.#delayMs)
  }

  /** The next token is due. */
  deadlineReached (): void {
    this.#emit()
  }

  /** An abort ends a wait at once; the reply watches only when there is a wait to end. */
  #listen (): void {
    if (this.#listening) return
    this.#listening = true
    this.#cancel.watch(this)
  }

  /** The abort: the reply itself is the watcher, so there is no function of ours to make for it. */
  cancelled (reason: unknown): void {
    this.#fail(reason)
  }

  /** Only from #emit's loop, which runs while the reply is unsettled. */
  #succeed (): void {
    this.#settle()
    this.#reportUsage(this.#sent)
    ;(this.#handler as ReplyHandler).onComplete()
  }

  #fail (err: unknown): void {
    if (this.#settle()) (this.#handler as ReplyHandler).onError(err)
  }

  /** Clears the deadline and stops watching, once; false when the reply had settled already. */
  #settle (): boolean {
    if (this.#settled) return false
    this.#settled = true
    if (this.#due !== null) deadlines.clear(this.#due)
    if (this.#listening) this.#cancel.unwatch(this)
    return true
  }

  #reportUsage (completion: number): void {
    const prompt = this.#request.messages.reduce((n, m) => n + countTokens(m.content ?? ''), 0)
    ;(this.#handler as ReplyHandler).onUsage({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion })
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
const TOKEN = /\S+\s*|\s+/g
/** The same tokens, one at a time from a given index. */
const TOKEN_AT = /\S+\s*|\s+/y

/** How many tokens the reply `text` is streamed as (`test` builds no match arrays). */
export function countTokens (text: string): number {
  TOKEN.lastIndex = 0
  let n = 0
  while (TOKEN.test(text)) n++
  return n
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
