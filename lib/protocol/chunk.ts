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

/** The four core keys first, so the chunk's own key order is the wire's; extras may not override them. */
export function makeChunk (chunkType: ChunkType, fields?: CoreFields, extra?: Record<string, unknown>): StreamChunk {
  const chunk: StreamChunk = {
    chunk_type: chunkType,
    content: fields?.content ?? null,
    tool_call: fields?.tool_call ?? null,
    memories_count: fields?.memories_count ?? null
  }
  if (extra === undefined) return chunk
  for (const key in extra) {
    if (CORE_KEYS.has(key)) continue
    // Assigned, `__proto__` would set the prototype instead of making a key (as the spread it replaces did).
    if (key === '__proto__') Object.defineProperty(chunk, key, { value: extra[key], enumerable: true, writable: true, configurable: true })
    else chunk[key] = extra[key]
  }
  return chunk
}

/** The four keys every chunk has, in wire order. */
const CORE_ORDER = ['chunk_type', 'content', 'tool_call', 'memories_count']
const CORE_KEYS = new Set(CORE_ORDER)

/** Whether JSON.stringify writes `chunk` in wire order: its first keys are the core ones, in order, none undefined. */
function inWireOrder (chunk: StreamChunk): boolean {
  let i = 0
  for (const key in chunk) {
    if (key !== CORE_ORDER[i] || chunk[key] === undefined) return false
    if (++i === 4) break
  }
  return i === 4
}

/**
 * JSON.stringify escapes every control character but leaves U+0085, U+2028 and U+2029 raw, and
 * `str.splitlines()` consumers (Python `requests`' `iter_lines(decode_unicode=True)`) split a data
 * line there. Escaped, they are still the same JSON string.
 */
const HAS_SEPARATOR = /[\u0085\u2028\u2029]/
const SEPARATORS = /[\u0085\u2028\u2029]/g
const escapeSeparator = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`

/** JSON of `value` with no raw line-breaking code point in it. */
function stringify (value: unknown): string {
  const json = JSON.stringify(value)
  return HAS_SEPARATOR.test(json) ? json.replace(SEPARATORS, escapeSeparator) : json
}

/**
 * Key order fixed so the output reads like AgentMem's serde output: the four core keys, then
 * the extras in insertion order. A chunk from makeChunk is already in that order and goes through
 * one JSON.stringify (about four times faster than piece by piece); any other is built as text.
 */
export function serializeChunk (chunk: StreamChunk): string {
  if (inWireOrder(chunk)) return stringify(chunk)
  let json = `{"chunk_type":"${chunk.chunk_type}","content":${stringify(chunk.content)},"tool_call":${stringify(chunk.tool_call)},"memories_count":${JSON.stringify(chunk.memories_count)}`
  for (const key in chunk) {
    const value = chunk[key]
    // JSON.stringify leaves undefined properties out; so does this.
    if (value === undefined || CORE_KEYS.has(key)) continue
    json += `,${stringify(key)}:${stringify(value)}`
  }
  return json + '}'
}

const CONTENT_PREFIX = '{"chunk_type":"content","content":'
const CONTENT_SUFFIX = ',"tool_call":null,"memories_count":null}'

/** A content event's text as a JSON string: what the replay logs (local and shared) keep of it. */
export const contentLiteral = (text: string): string => stringify(text)

/** Hot path, once per token: a content event's data line, from its text as `contentLiteral` wrote it. */
export function contentLineOf (literal: string): string {
  return CONTENT_PREFIX + literal + CONTENT_SUFFIX
}

/** Every event's line is a JSON object, so it begins with `{`; a content literal, a JSON string, with `"`. */
const BRACE = 0x7b
const QUOTE = 0x22

/** Whether `line` can be an event's data line: a JSON object. */
export const isEventLine = (line: string): boolean => line.charCodeAt(0) === BRACE

/** Whether `text` is an entry as the replay logs keep it (an event line or a content literal), not a whole frame. */
export function isKeptEntry (text: string): boolean {
  const first = text.charCodeAt(0)
  return first === BRACE || first === QUOTE
}

/**
 * The data line of an event as the replay logs keep it (local and shared alike): any event as its
 * line, a content event as its text's JSON string (`contentLiteral`, which begins with `"`).
 */
export const keptLineOf = (entry: string): string => isEventLine(entry) ? entry : contentLineOf(entry)
