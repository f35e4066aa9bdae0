import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { validationError } from './errors.js'
import { MEMORY_TYPES, type MemoryType } from './store/store.js'

/** Request schemas, one source of truth for validation (and, later, the OpenAPI document). */
const metadata = { type: 'object' } as const
/**
 * AgentMem's `llm_config`. `model`, `temperature`, `max_tokens` and `top_p` are honoured per
 * agent; other keys AgentMem sends are kept as they are. `api_key` and `base_url` are refused
 * (see agents.ts): the server never stores a tenant's upstream secret or lets a tenant point it
 * at an arbitrary URL.
 */
const llmConfig = {
  type: 'object',
  properties: {
    provider: { type: 'string', minLength: 1, maxLength: 100 },
    model: { type: 'string', minLength: 1, maxLength: 200 },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    max_tokens: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    top_p: { type: 'number', minimum: 0, maximum: 1 }
  },
  maxProperties: 50
} as const

const agentFields = {
  name: { type: 'string', minLength: 1, maxLength: 255 },
  description: { type: ['string', 'null'], maxLength: 10_000 },
  system: { type: ['string', 'null'], maxLength: 100_000 },
  llm_config: llmConfig,
  metadata
} as const

/** AgentMem's memory types, in its own spelling or the lowercase one its SDKs send. */
export const MEMORY_TYPE_SPELLINGS: readonly string[] = [...MEMORY_TYPES, ...MEMORY_TYPES.map((t) => t.toLowerCase())]
const memoryType = { type: 'string', enum: MEMORY_TYPE_SPELLINGS }
const BY_SPELLING = new Map<string, MemoryType>(MEMORY_TYPES.flatMap((t) => [[t, t], [t.toLowerCase(), t]]))

/** The stored spelling of a memory type, or undefined for an unknown one. */
export function memoryTypeOf (value: string): MemoryType | undefined {
  return BY_SPELLING.get(value)
}

/** An id a client chooses (a user, a session) or names (an agent). */
const id = { type: 'string', minLength: 1, maxLength: 200 } as const

const memoryFields = {
  content: { type: 'string', minLength: 1, maxLength: 10_000 },
  memory_type: memoryType,
  importance: { type: 'number', minimum: 0, maximum: 1 },
  metadata
} as const

export const schemas = {
  createAgent: { type: 'object', properties: agentFields },
  updateAgent: { type: 'object', properties: agentFields, minProperties: 1 },
  chatRequest: {
    type: 'object',
    required: ['message'],
    properties: {
      message: { type: 'string', minLength: 1, maxLength: 100_000 },
      user_id: id,
      session_id: id,
      stream: { type: 'boolean' },
      max_memories: { type: 'integer', minimum: 0, maximum: 50 },
      include_reasoning: { type: 'boolean' },
      metadata
    }
  },
  createMemory: {
    type: 'object',
    required: ['content'],
    properties: {
      ...memoryFields,
      user_id: id,
      session_id: id
    }
  },
  updateMemory: { type: 'object', minProperties: 1, properties: memoryFields },
  createOrgMemory: {
    type: 'object',
    required: ['content', 'agent_id'],
    properties: {
      ...memoryFields,
      agent_id: id,
      user_id: id,
      session_id: id
    }
  },
  createApiKey: {
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 200 },
      roles: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 100 }, maxItems: 20 },
      ttl: { type: 'string', pattern: '^[0-9]{1,6}[smhd]$' }
    }
  },
  searchMemories: {
    type: 'object',
    required: ['query'],
    properties: {
      query: { type: 'string', minLength: 1, maxLength: 1000 },
      agent_id: id,
      user_id: id,
      memory_type: memoryType,
      limit: { type: 'integer', minimum: 1, maximum: 100 },
      offset: { type: 'integer', minimum: 0 },
      min_importance: { type: 'number', minimum: 0, maximum: 1 },
      threshold: { type: 'number', minimum: 0, maximum: 1 }
    }
  }
} as const

export interface ChatRequest {
  message: string
  user_id?: string
  session_id?: string
  stream?: boolean
  max_memories?: number
  /** Stream a reasoning model's thinking as `reasoning` chunks (an extension of AgentMem's types). */
  include_reasoning?: boolean
  metadata?: Record<string, unknown>
}

// Unknown fields are ignored, not stripped: AgentMem clients send extras.
const ajv = new Ajv({ allErrors: true, strict: true })

function formatErrors (errors: ErrorObject[]): Array<{ path: string, message: string }> {
  return errors.map((e) => ({ path: e.instancePath || '/', message: String(e.message) }))
}

export function validator<T> (schema: object): (value: unknown) => T {
  const check: ValidateFunction = ajv.compile(schema)
  return (value) => {
    if (!check(value)) throw validationError(formatErrors(check.errors as ErrorObject[]))
    return value as T
  }
}
