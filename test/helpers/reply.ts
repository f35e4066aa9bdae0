import type { LlmReply, ReplyHandler, TokenUsage, ToolCall } from '../../lib/llm/provider.js'

/** What a provider pushed, in order. */
export type Pushed =
  | { type: 'text', text: string }
  | { type: 'reasoning', text: string }
  | { type: 'tool_call', call: ToolCall }
  | { type: 'usage', usage: TokenUsage }

/**
 * A ReplyHandler that records every push; `onPush` may pause it by setting `paused`. `ended`
 * settles with the reply's end (rejected with onError's reason); `ends` counts the ends a provider
 * called, which must be exactly one, after which nothing may be pushed (`pushedAfterEnd`).
 */
export class RecordingHandler implements ReplyHandler {
  readonly pushed: Pushed[] = []
  paused: Promise<void> | null = null
  ends = 0
  pushedAfterEnd = 0
  readonly ended: Promise<void>
  readonly #onPush: (handler: RecordingHandler) => void
  #resolve!: () => void
  #reject!: (err: unknown) => void

  constructor (onPush: (handler: RecordingHandler) => void = () => {}) {
    this.#onPush = onPush
    this.ended = new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    // Tests that expect a failure await it; one that does not must not crash the process first.
    this.ended.catch(() => {})
  }

  #push (p: Pushed): void {
    if (this.ends > 0) this.pushedAfterEnd++
    this.pushed.push(p)
    this.#onPush(this)
  }

  onComplete (): void {
    this.ends++
    this.#resolve()
  }

  onError (err: unknown): void {
    this.ends++
    this.#reject(err)
  }

  onText (text: string): void { this.#push({ type: 'text', text }) }
  onReasoning (text: string): void { this.#push({ type: 'reasoning', text }) }
  onToolCall (call: ToolCall): void { this.#push({ type: 'tool_call', call }) }
  onUsage (usage: TokenUsage): void { this.#push({ type: 'usage', usage }) }
}

/** Pipes `reply` into `handler`; settles as the reply ends. */
export async function piped (reply: LlmReply, handler: RecordingHandler): Promise<void> {
  reply.pipe(handler)
  await handler.ended
}

/** Reads a whole reply. */
export async function record (reply: LlmReply, onPush?: (handler: RecordingHandler) => void): Promise<Pushed[]> {
  const handler = new RecordingHandler(onPush)
  await piped(reply, handler)
  return handler.pushed
}
