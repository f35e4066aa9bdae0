import type { Memory, MemoryType } from '../store/store.js'

/** One fact from a turn and what to do with it, as mem0 decides: add it, update a memory, or nothing. */
export interface MemoryDecision {
  action: 'ADD' | 'UPDATE' | 'NOOP'
  content: string
  memory_type: MemoryType
  importance: number
  /** The memory an UPDATE replaces; one of the ids the extractor was shown. */
  target_id: string | null
}

export interface ExtractionInput {
  userMessage: string
  reply: string
  /** The most similar existing memories, which UPDATE and NOOP refer to. */
  existing: Memory[]
}

export interface MemoryExtractor {
  extract: (input: ExtractionInput, signal: AbortSignal) => Promise<MemoryDecision[]>
}

interface Rule {
  pattern: RegExp
  /** Facts with a key replace each other (one name, one home); keyless facts accumulate. */
  key: string | null
  render: (value: string) => string
  memory_type: MemoryType
  importance: number
}

// A value runs to the end of its clause: punctuation or a joining "and"/"but".
const VALUE = '(.+?)(?=\\s+(?:and|but)\\s|[.,;!?\\n]|$)'
const RULES: Rule[] = [
  { pattern: new RegExp(`\\bmy name is ${VALUE}`, 'i'), key: "User's name is ", render: (v) => `User's name is ${v}`, memory_type: 'Semantic', importance: 0.9 },
  { pattern: new RegExp(`\\bi (?:live|am based) in ${VALUE}`, 'i'), key: 'User lives in ', render: (v) => `User lives in ${v}`, memory_type: 'Semantic', importance: 0.7 },
  { pattern: new RegExp(`\\bi work (?:at|for) ${VALUE}`, 'i'), key: 'User works at ', render: (v) => `User works at ${v}`, memory_type: 'Semantic', importance: 0.7 },
  { pattern: new RegExp(`\\bi (?:really )?(?:like|love|enjoy|prefer) ${VALUE}`, 'i'), key: null, render: (v) => `User likes ${v}`, memory_type: 'Semantic', importance: 0.6 },
  { pattern: new RegExp(`\\bi(?: am|'m) (?:going|planning) to ${VALUE}`, 'i'), key: null, render: (v) => `User plans to ${v}`, memory_type: 'Episodic', importance: 0.5 },
  { pattern: new RegExp(`\\bi plan to ${VALUE}`, 'i'), key: null, render: (v) => `User plans to ${v}`, memory_type: 'Episodic', importance: 0.5 }
]

/**
 * The offline extractor behind the builtin provider: statements the user makes about
 * themselves (name, home, work, likes, plans), decided against existing memories by key.
 */
export class RuleBasedExtractor implements MemoryExtractor {
  async extract (input: ExtractionInput): Promise<MemoryDecision[]> {
    // "remember …" is the save_memory tool's job; extracting it too would store it twice.
    if (/^\s*remember\b/i.test(input.userMessage)) return []
    const decisions: MemoryDecision[] = []
    for (const rule of RULES) {
      const match = rule.pattern.exec(input.userMessage)
      if (match === null) continue
      const content = rule.render((match[1] as string).trim())
      const same = input.existing.find((m) => m.content.toLowerCase() === content.toLowerCase())
      const keyed = rule.key === null ? undefined : input.existing.find((m) => m.content.startsWith(rule.key as string))
      const action = same !== undefined ? 'NOOP' : keyed !== undefined ? 'UPDATE' : 'ADD'
      decisions.push({ content, memory_type: rule.memory_type, importance: rule.importance, action, target_id: (same ?? keyed)?.id ?? null })
    }
    return decisions
  }
}
