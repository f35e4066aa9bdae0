import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { validationError } from './errors.js'
import { MEMORY_TYPES } from './store/store.js'

/** Request schemas, one source of truth for validation (and, later, the OpenAPI document). */
const metadata = { type: 'object' } as const
const llmConfig = {
  type: 'object',
  properties: {
    model: { type: 'string', minLength: 1, maxLength: 200 },
    temperature: { type: 'number', minimum: 0, maximum: 2 }
  },
  additionalProperties: false
} as const

const agentFields = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  description: { type: ['string', 'null'], maxLength: 10_000 },
  system: { type: ['string', 'null'], maxLength: 100_000 },
  llm_config: llmConfig,
  metadata
} as const

const memoryFields = {
  content: { type: 'string', minLength: 1, maxLength: 10_000 },
  memory_type: { type: 'string', enum: MEMORY_TYPES },
  importance: { type: 'number', minimum: 0, maximum: 1 },
  metadata
} as const

export const schemas = {
  createAgent: { type: 'object', required: ['name'], properties: agentFields },
  updateAgent: { type: 'object', properties: agentFields, minProperties: 1 },
  chatRequest: {
    type: 'object',
    required: ['message'],
    properties: {
      message: { type: 'string', minLength: 1, maxLength: 100_000 },
      user_id: { type: 'string', minLength: 1, maxLength: 200 },
      session_id: { type: 'string', minLength: 1, maxLength: 200 },
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
      user_id: { type: 'string', minLength: 1, maxLength: 200 },
      session_id: { type: 'string', minLength: 1, maxLength: 200 }
    }
  },
  updateMemory: { type: 'object', minProperties: 1, properties: memoryFields }
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
