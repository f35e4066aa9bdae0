import type { LlmReply, ReplyHandler, TokenUsage, ToolCall } from '../../lib/llm/provider.js'

/** What a provider pushed, in order. */
export type Pushed =
  | { type: 'text', text: string }
  | { type: 'reasoning', text: string }
  | { type: 'tool_call', call: ToolCall }
  | { type: 'usage', usage: TokenUsage }

/** A ReplyHandler that records every push; `onPush` may pause it by setting `paused`. */
export class RecordingHandler implements ReplyHandler {
  readonly pushed: Pushed[] = []
  paused: Promise<void> | null = null
  readonly #onPush: (handler: RecordingHandler) => void

  constructor (onPush: (handler: RecordingHandler) => void = () => {}) {
    this.#onPush = onPush
  }

  #push (p: Pushed): void {
    this.pushed.push(p)
    this.#onPush(this)
  }

  onText (text: string): void { this.#push({ type: 'text', text }) }
  onReasoning (text: string): void { this.#push({ type: 'reasoning', text }) }
  onToolCall (call: ToolCall): void { this.#push({ type: 'tool_call', call }) }
  onUsage (usage: TokenUsage): void { this.#push({ type: 'usage', usage }) }
}

/** Reads a whole reply. */
export async function record (reply: LlmReply, onPush?: (handler: RecordingHandler) => void): Promise<Pushed[]> {
  const handler = new RecordingHandler(onPush)
  await reply.pipe(handler)
  return handler.pushed
}
