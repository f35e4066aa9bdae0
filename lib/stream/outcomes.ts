import { UpstreamError } from '../llm/provider.js'
import { HttpError, type ErrorCode } from '../errors.js'
import { ClientGoneError, SlowConsumerError } from '../sse/writer.js'

/** Why a stream stopped early; each maps to one `error` chunk code (or to none, when nobody listens). */
export type TimeoutKind = 'first_token' | 'idle' | 'max_duration'

export class StreamTimeoutError extends Error {
  readonly kind: TimeoutKind
  readonly ms: number
  constructor (kind: TimeoutKind, ms: number) {
    super(`${kind.replace('_', ' ')} timeout: ${ms} ms elapsed`)
    this.name = 'StreamTimeoutError'
    this.kind = kind
    this.ms = ms
  }
}

export class ServerShutdownError extends Error {
  constructor () {
    super('Server is shutting down')
    this.name = 'ServerShutdownError'
  }
}

/** The agent was deleted while its stream ran: its reply has nowhere to be stored. */
export class AgentDeletedError extends Error {
  constructor () {
    super('The agent was deleted while its reply was streaming')
    this.name = 'AgentDeletedError'
  }
}

/** DELETE /api/v1/streams/{id} */
export class CancelledError extends Error {
  constructor () {
    super('Stream cancelled')
    this.name = 'CancelledError'
  }
}

export type StreamOutcome =
  | 'cancelled' | 'done' | 'timeout' | 'upstream_error' | 'client_gone' | 'slow_consumer' | 'server_shutdown' | 'agent_deleted' | 'internal_error'

/**
 * Every way a stream ends but `done`, in one table: the `error` chunk's code (the key), the
 * outcome metrics and logs count it under, and the HTTP error the one-shot chat answers for it.
 * Every ending writes its chunk, so the replay log always ends with a terminal event;
 * `client_gone` and `slow_consumer` reach only readers that resume later, and `producer_lost`
 * and `stream_lost` are written by the coordinator for readers on other instances.
 */
export const STREAM_ENDINGS = {
  first_token_timeout: { outcome: 'timeout', http: 'UPSTREAM_TIMEOUT' },
  idle_timeout: { outcome: 'timeout', http: 'UPSTREAM_TIMEOUT' },
  max_duration_timeout: { outcome: 'timeout', http: 'UPSTREAM_TIMEOUT' },
  upstream_error: { outcome: 'upstream_error', http: 'UPSTREAM_ERROR' },
  cancelled: { outcome: 'cancelled', http: 'INTERNAL_ERROR' },
  server_shutdown: { outcome: 'server_shutdown', http: 'SERVICE_UNAVAILABLE' },
  client_gone: { outcome: 'client_gone', http: 'INTERNAL_ERROR' },
  slow_consumer: { outcome: 'slow_consumer', http: 'INTERNAL_ERROR' },
  agent_deleted: { outcome: 'agent_deleted', http: 'INTERNAL_ERROR' },
  internal_error: { outcome: 'internal_error', http: 'INTERNAL_ERROR' },
  producer_lost: { outcome: 'internal_error', http: 'INTERNAL_ERROR' },
  stream_lost: { outcome: 'internal_error', http: 'INTERNAL_ERROR' }
} as const satisfies Record<string, { outcome: StreamOutcome, http: ErrorCode }>

export type StreamEndCode = keyof typeof STREAM_ENDINGS

export interface StreamFailure {
  outcome: StreamOutcome
  code: StreamEndCode
  message: string
}

const failure = (code: StreamEndCode, message: string): StreamFailure => ({ outcome: STREAM_ENDINGS[code].outcome, code, message })

export function classifyFailure (err: unknown): StreamFailure {
  if (err instanceof StreamTimeoutError) return failure(`${err.kind}_timeout`, err.message)
  if (err instanceof UpstreamError) return failure('upstream_error', err.message)
  if (err instanceof CancelledError) return failure('cancelled', err.message)
  if (err instanceof ServerShutdownError) return failure('server_shutdown', err.message)
  if (err instanceof ClientGoneError) return failure('client_gone', err.message)
  if (err instanceof SlowConsumerError) return failure('slow_consumer', err.message)
  if (err instanceof AgentDeletedError) return failure('agent_deleted', err.message)
  return failure('internal_error', 'Internal error while streaming')
}

/** The HTTP error a one-shot chat answers for a stream that ended with `code`. */
export function endingAsHttp (code: StreamEndCode, message: string): HttpError {
  return new HttpError(STREAM_ENDINGS[code].http, message, { code })
}
