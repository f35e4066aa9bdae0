import type { ChunkType } from './state-machine.js'

/** The AgentMem wire format: four keys always present, extras allowed after them. */
export interface ToolCallInfo {
  id?: string
  tool_name: string
  arguments: unknown
  status?: 'running' | 'completed' | 'failed'
  result?: string | null
  error?: string
}

export interface StreamChunk {
  chunk_type: ChunkType
  content: string | null
  tool_call: ToolCallInfo | null
  memories_count: number | null
  [extra: string]: unknown
}

export interface CoreFields {
  content?: string | null
  tool_call?: ToolCallInfo | null
  memories_count?: number | null
}

export function makeChunk (chunkType: ChunkType, fields: CoreFields = {}, extra: Record<string, unknown> = {}): StreamChunk {
  return {
    ...extra,
    chunk_type: chunkType,
    content: fields.content ?? null,
    tool_call: fields.tool_call ?? null,
    memories_count: fields.memories_count ?? null
  }
}

/** Key order fixed so the output reads like AgentMem's serde output. */
export function serializeChunk (chunk: StreamChunk): string {
  const { chunk_type: chunkType, content, tool_call: toolCall, memories_count: memoriesCount, ...extra } = chunk
  return JSON.stringify({ chunk_type: chunkType, content, tool_call: toolCall, memories_count: memoriesCount, ...extra })
}

const CONTENT_PREFIX = '{"chunk_type":"content","content":'
const CONTENT_SUFFIX = ',"tool_call":null,"memories_count":null}'

/** Hot path: one content chunk per token, built without an intermediate object. */
export function serializeContent (text: string): string {
  return CONTENT_PREFIX + JSON.stringify(text) + CONTENT_SUFFIX
}
