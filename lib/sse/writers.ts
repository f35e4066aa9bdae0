import type { AbortSource } from '../cancel.js'
import type { IncomingMessage } from 'node:http'
import type { AppResponse } from '../http/response.js'
import { acceptsGzip } from '../http/accept-encoding.js'
import { SlotBudget } from '../limits/budget.js'
import type { KeepAliveTicker } from './keep-alive.js'
import { SseWriter } from './writer.js'

/** An SSE writer for a response; aborting `abort` stops its waits for drain. */
export type WriterFactory = (req: IncomingMessage, res: AppResponse, abort: AbortSource) => SseWriter

export interface WriterFactoryOptions {
  keepAlive: KeepAliveTicker
  drainTimeoutMs: number
  retryMs: number
  /** Streams this instance compresses at once. */
  maxCompressed: number
}

/** Writers that gzip when the client accepts it and the budget allows; over the budget a client still gets its stream, uncompressed. */
export function writerFactory (opts: WriterFactoryOptions): WriterFactory {
  const compression = new SlotBudget(opts.maxCompressed)
  const { keepAlive, drainTimeoutMs, retryMs } = opts
  return (req, res, abort) => {
    const release = acceptsGzip(req.headers['accept-encoding']) ? compression.tryTake() : null
    if (release !== null) res.once('close', release)
    return new SseWriter(res, { keepAlive, drainTimeoutMs, retryMs, abort, gzip: release !== null })
  }
}
