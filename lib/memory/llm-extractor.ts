import { Ajv } from 'ajv'
import type { JsonCapableProvider } from '../llm/provider.js'
import type { ExtractionInput, MemoryDecision, MemoryExtractor } from './extractor.js'

/** Strict structured-output schema: every property required, nulls explicit. */
export const EXTRACTION_SCHEMA = {
  type: 'object',
  properties: {
    facts: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          action: { type: 'string', enum: ['ADD', 'UPDATE', 'NOOP'] },
          content: { type: 'string' },
          memory_type: { type: 'string', enum: ['Episodic', 'Semantic', 'Procedural'] },
          importance: { type: 'number', minimum: 0, maximum: 1 },
          target_id: { type: ['string', 'null'] }
        },
        required: ['action', 'content', 'memory_type', 'importance', 'target_id'],
        additionalProperties: false
      }
    }
  },
  required: ['facts'],
  additionalProperties: false
}

const PROMPT = `You maintain an AI agent's long-term memory about a user.
From the conversation turn below, extract durable facts about the user (identity, preferences, plans, relationships, instructions).
Compare each fact with the existing memories and choose:
- ADD: a new fact (target_id null)
- UPDATE: it changes or refines an existing memory (target_id = that memory's id, content = the merged fact)
- NOOP: already known (target_id = the matching memory's id)
Write each fact as a short third-person sentence ("User likes green tea"). Return {"facts": []} when there is nothing worth keeping.`

const validate = new Ajv({ strict: false }).compile<{ facts: MemoryDecision[] }>(EXTRACTION_SCHEMA)

/** mem0-style extraction and decision in one schema-constrained call to the chat model. */
export class LlmMemoryExtractor implements MemoryExtractor {
  readonly #llm: JsonCapableProvider

  constructor (llm: JsonCapableProvider) {
    this.#llm = llm
  }

  async extract (input: ExtractionInput, signal: AbortSignal): Promise<MemoryDecision[]> {
    const existing = input.existing.map((m) => ({ id: m.id, content: m.content }))
    const reply = await this.#llm.completeJson({
      schemaName: 'memory_extraction',
      schema: EXTRACTION_SCHEMA,
      validate,
      signal,
      messages: [
        { role: 'system', content: PROMPT },
        { role: 'user', content: JSON.stringify({ existing_memories: existing, user: input.userMessage, assistant: input.reply }) }
      ]
    })
    // completeJson returns only an answer that passed `validate`.
    return (reply as { facts: MemoryDecision[] }).facts
  }
}
