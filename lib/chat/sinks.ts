import type { ServerResponse } from 'node:http'
import { serializeChunk, serializeContent, type StreamChunk, type ToolCallInfo } from '../sse/chunk.js'
import { SseWriter, type SseWriterOptions } from '../sse/writer.js'

/**
 * Where a run's chunks go. `content` may return a promise: the run awaits it before pulling
 * the next token, which is how a slow reader slows the upstream instead of growing a buffer.
 */
export interface ChunkSink {
  readonly bufferedBytes: number
  start: (chunk: StreamChunk) => void
  content: (text: string) => Promise<void> | undefined
  /** Any other live chunk: tool_call, memory_update. */
  event: (chunk: StreamChunk) => Promise<void> | undefined
  finish: (chunk: StreamChunk) => void
  end: (destroy: boolean) => void
}

export class SseSink implements ChunkSink {
  readonly #writer: SseWriter

  constructor (res: ServerResponse, opts: SseWriterOptions) {
    this.#writer = new SseWriter(res, opts)
  }

  get bufferedBytes (): number {
    return this.#writer.bufferedBytes
  }

  /** The first event goes into an empty socket buffer: nothing to wait for. */
  start (chunk: StreamChunk): void {
    this.#writer.open()
    this.#writer.send(serializeChunk(chunk))
  }

  content (text: string): Promise<void> | undefined {
    return this.#writer.send(serializeContent(text)) ? undefined : this.#writer.drained()
  }

  event (chunk: StreamChunk): Promise<void> | undefined {
    return this.#writer.send(serializeChunk(chunk)) ? undefined : this.#writer.drained()
  }

  /** The terminal event needs no wait: end() follows and flushes it. */
  finish (chunk: StreamChunk): void {
    this.#writer.send(serializeChunk(chunk))
  }

  end (destroy: boolean): void {
    this.#writer.end(destroy)
  }
}

/** For the non-streaming endpoint: the same run, gathered into one reply. */
export class CollectingSink implements ChunkSink {
  readonly bufferedBytes = 0
  content = (text: string): undefined => {
    this.text += text
  }

  text = ''
  terminal: StreamChunk | null = null
  /** Tool calls in their final state (completed or failed). */
  readonly toolCalls: ToolCallInfo[] = []
  memoriesCount = 0

  start (): void {}

  event (chunk: StreamChunk): undefined {
    if (chunk.tool_call !== null && chunk.tool_call.status !== 'running') this.toolCalls.push(chunk.tool_call)
    if (chunk.memories_count !== null) this.memoriesCount = chunk.memories_count
  }

  finish (chunk: StreamChunk): void {
    this.terminal = chunk
  }

  end (): void {}
}
