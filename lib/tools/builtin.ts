import { MEMORY_TYPES, type MemoryType } from '../store/store.js'
import type { ToolDefinition } from './registry.js'

/** The tools every agent has: its own memory, and the clock. */
export const builtinTools: ToolDefinition[] = [
  {
    name: 'search_memory',
    description: 'Search the long-term memories of this agent about the current user.',
    parameters: {
      type: 'object',
      properties: { query: { type: 'string', minLength: 1 } },
      required: ['query'],
      additionalProperties: false
    },
    handler: async (args, ctx) => {
      const found = await ctx.memories.retrieve(ctx.scope, args.query as string, 5, ctx)
      return found.map((m) => ({ id: m.id, content: m.content, memory_type: m.memory_type }))
    }
  },
  {
    name: 'save_memory',
    description: 'Save a fact about the user to long-term memory.',
    parameters: {
      type: 'object',
      properties: {
        content: { type: 'string', minLength: 1, maxLength: 10_000 },
        memory_type: { type: 'string', enum: MEMORY_TYPES }
      },
      required: ['content'],
      additionalProperties: false
    },
    handler: async (args, ctx) => {
      const memory = await ctx.memories.add(ctx.scope, {
        user_id: ctx.scope.userId,
        session_id: ctx.sessionId,
        content: args.content as string,
        memory_type: (args.memory_type as MemoryType | undefined) ?? 'Semantic',
        importance: 0.7,
        metadata: { source: 'save_memory' }
      }, ctx.signal)
      ctx.memoryOps.push({ op: 'ADD', id: memory.id, content: memory.content })
      return { id: memory.id, saved: true }
    }
  },
  {
    name: 'current_time',
    description: 'The current date and time (UTC, ISO 8601).',
    parameters: { type: 'object', properties: {}, additionalProperties: false },
    handler: async () => ({ now: new Date().toISOString() })
  }
]
