import { pino, type Logger } from 'pino'

export type { Logger }

/**
 * Structured JSON lines. Nothing that identifies a secret or what users say is logged:
 * no headers (bearer tokens), no query strings (resume tokens), no message text.
 */
export function createLogger (level: string): Logger {
  return pino({ level, base: { service: 'agentmem-stream' }, timestamp: pino.stdTimeFunctions.isoTime })
}

const REQUEST_ID = /^[\w.:-]{1,128}$/

/** A caller's X-Request-Id is kept when it is a plain token; anything else is replaced. */
export function requestIdFrom (header: string | string[] | undefined, make: () => string): string {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : make()
}
