import { pino, type Logger } from 'pino'
import { batchedStdout } from './batched-lines.js'
import { isoTime } from '../iso-time.js'

export type { Logger }

/**
 * Structured JSON lines. Nothing that identifies a secret or what users say is logged:
 * no headers (bearer tokens), no query strings (resume tokens), no message text.
 */
export function createLogger (level: string): Logger {
  // Not pino's asynchronous destination: it measures its buffer at every line, flattening it
  // each time (about 8 KB of garbage per line under load). Nor its synchronous one: a write per line.
  return pino({ level, base: { service: 'agentmem-stream' }, timestamp: timeStamp }, batchedStdout())
}

let stampedAt = Number.NaN
let stamp = ''

/** pino's `isoTime` field for the time `ms`, made once per millisecond: under load many lines share one. */
export function timeField (ms: number): string {
  if (ms !== stampedAt) {
    stampedAt = ms
    stamp = `,"time":"${isoTime(ms)}"`
  }
  return stamp
}

const timeStamp = (): string => timeField(Date.now())

const REQUEST_ID = /^[\w.:-]{1,128}$/

/** A caller's X-Request-Id is kept when it is a plain token; anything else is replaced. */
export function requestIdFrom (header: string | string[] | undefined, make: () => string): string {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : make()
}
