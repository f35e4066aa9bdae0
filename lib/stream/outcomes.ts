import { HttpError, type ErrorCode } from '../errors.js'

/** Why a stream stopped early; each maps to one `error` chunk code (or to none, when nobody listens). */
export type TimeoutKind = 'first_token' | 'idle' | 'max_duration'

export class StreamTimeoutError extends Error {
  readonly code: `${TimeoutKind}_timeout`
  readonly kind: TimeoutKind
  readonly ms: number
  constructor (kind: TimeoutKind, ms: number) {
    super(`${kind.replace('_', ' ')} timeout: ${ms} ms elapsed`)
    this.name = 'StreamTimeoutError'
    this.code = `${kind}_timeout`
    this.kind = kind
    this.ms = ms
  }

  get details (): { timeout: TimeoutKind, ms: number } {
    return { timeout: this.kind, ms: this.ms }
  }
}

export class ServerShutdownError extends Error {
  readonly code = 'server_shutdown'
  constructor () {
    super('Server is shutting down')
    this.name = 'ServerShutdownError'
  }
}

/** The agent was deleted while its stream ran: its reply has nowhere to be stored. */
export class AgentDeletedError extends Error {
  readonly code = 'agent_deleted'
  constructor () {
    super('The agent was deleted while its reply was streaming')
    this.name = 'AgentDeletedError'
  }
}

/** DELETE /api/v1/streams/{id} */
export class CancelledError extends Error {
  readonly code = 'cancelled'
  constructor () {
    super('Stream cancelled')
    this.name = 'CancelledError'
  }
}

export type StreamOutcome =
  | 'cancelled' | 'done' | 'timeout' | 'upstream_error' | 'client_gone' | 'slow_consumer' | 'server_shutdown' | 'agent_deleted' | 'internal_error'

/**
 * Every way a stream ends but `done`, in one table: the `error` chunk's code (the key, which the
 * error that caused it carries as its `code`), the outcome metrics and logs count it under, the
 * HTTP error it is before the stream's first byte (and for the one-shot chat), and whether the
 * same request may succeed if tried again (sent as `retryable` with the chunk). Every ending
 * writes its chunk, so the replay log always ends with a terminal event; `client_gone` and
 * `slow_consumer` reach only readers that resume later, and `producer_lost` and `stream_lost`
 * are written by the coordinator for readers on other instances.
 */
export const STREAM_ENDINGS = {
  first_token_timeout: { outcome: 'timeout', http: 'UPSTREAM_TIMEOUT', retryable: true },
  idle_timeout: { outcome: 'timeout', http: 'UPSTREAM_TIMEOUT', retryable: true },
  max_duration_timeout: { outcome: 'timeout', http: 'UPSTREAM_TIMEOUT', retryable: false },
  upstream_error: { outcome: 'upstream_error', http: 'UPSTREAM_ERROR', retryable: true },
  cancelled: { outcome: 'cancelled', http: 'INTERNAL_ERROR', retryable: false },
  server_shutdown: { outcome: 'server_shutdown', http: 'SERVICE_UNAVAILABLE', retryable: true },
  client_gone: { outcome: 'client_gone', http: 'INTERNAL_ERROR', retryable: true },
  slow_consumer: { outcome: 'slow_consumer', http: 'INTERNAL_ERROR', retryable: true },
  agent_deleted: { outcome: 'agent_deleted', http: 'INTERNAL_ERROR', retryable: false },
  internal_error: { outcome: 'internal_error', http: 'INTERNAL_ERROR', retryable: false },
  producer_lost: { outcome: 'internal_error', http: 'INTERNAL_ERROR', retryable: true },
  stream_lost: { outcome: 'internal_error', http: 'INTERNAL_ERROR', retryable: true }
} as const satisfies Record<string, { outcome: StreamOutcome, http: ErrorCode, retryable: boolean }>

export type StreamEndCode = keyof typeof STREAM_ENDINGS

export interface StreamFailure {
  outcome: StreamOutcome
  code: StreamEndCode
  message: string
  /** What the HTTP error says beside the message, when the failure came before the stream. */
  details: Record<string, unknown>
}

/** An error whose `code` names an entry of STREAM_ENDINGS. */
function endingOf (err: unknown): StreamEndCode | null {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && Object.hasOwn(STREAM_ENDINGS, code) ? code as StreamEndCode : null
}

/** Why a stream (or its opening) failed; anything without a known code is an internal error, whose message stays in the logs. */
export function classifyFailure (err: unknown): StreamFailure {
  const code = endingOf(err)
  if (code === null) return { outcome: 'internal_error', code: 'internal_error', message: 'Internal error while streaming', details: {} }
  const { message, details } = err as Error & { details?: Record<string, unknown> }
  return { outcome: STREAM_ENDINGS[code].outcome, code, message, details: details ?? {} }
}

/** The HTTP error for an ending: the one-shot chat's answer, or a failure before the stream's first byte. */
export function endingAsHttp (code: StreamEndCode, message: string, details: Record<string, unknown> = {}): HttpError {
  return new HttpError(STREAM_ENDINGS[code].http, message, { code, retryable: STREAM_ENDINGS[code].retryable, ...details })
}
