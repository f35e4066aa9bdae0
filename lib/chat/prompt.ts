import type { ChatMessage } from '../llm/provider.js'
import type { Message } from '../store/store.js'

export interface PromptParts {
  system: string | null
  /** Retrieved memories, already formatted as a context block. */
  context: string | null
  history: Message[]
  message: string
  historyCharBudget: number
}

/**
 * System prompt, retrieved memories, then as much recent history as fits the character budget
 * (newest kept), then the user's message. Pure, so what the model sees is testable without a model.
 */
export function buildPrompt (parts: PromptParts): ChatMessage[] {
  const messages: ChatMessage[] = []
  if (parts.system !== null && parts.system !== '') messages.push({ role: 'system', content: parts.system })
  if (parts.context !== null) messages.push({ role: 'system', content: parts.context })
  const kept: ChatMessage[] = []
  let budget = parts.historyCharBudget
  for (let i = parts.history.length - 1; i >= 0; i--) {
    const m = parts.history[i] as Message
    budget -= m.content.length
    if (budget < 0) break
    kept.push(m.role === 'user' ? { role: 'user', content: m.content } : { role: 'assistant', content: m.content })
  }
  for (let i = kept.length - 1; i >= 0; i--) messages.push(kept[i] as ChatMessage)
  messages.push({ role: 'user', content: parts.message })
  return messages
}
