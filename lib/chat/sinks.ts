import type { ServerResponse } from 'node:http'
import { serializeChunk, serializeContent, type StreamChunk } from '../sse/chunk.js'
import { SseWriter, type SseWriterOptions } from '../sse/writer.js'

/**
 * Where a run's chunks go. `content` may return a promise: the run awaits it before pulling
 * the next token, which is how a slow reader slows the upstream instead of growing a buffer.
 */
export interface ChunkSink {
  readonly bufferedBytes: number
  start: (chunk: StreamChunk) => Promise<void> | undefined
  content: (text: string) => Promise<void> | undefined
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

  start (chunk: StreamChunk): Promise<void> | undefined {
    this.#writer.open()
    return this.#writer.send(serializeChunk(chunk))
  }

  content (text: string): Promise<void> | undefined {
    return this.#writer.send(serializeContent(text))
  }

  finish (chunk: StreamChunk): void {
    // The terminal event needs no wait: end() below flushes it or tears the socket down.
    void this.#writer.send(serializeChunk(chunk))?.catch(() => {})
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

  start (): undefined {}

  finish (chunk: StreamChunk): void {
    this.terminal = chunk
  }

  end (): void {}
}
