import { UpstreamError } from '../llm/provider.js'
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

export interface StreamFailure {
  outcome: StreamOutcome
  /**
   * The `error` chunk's code. Every ending writes one, so the replay log always ends with a
   * terminal event; `client_gone` and `slow_consumer` reach only readers that resume later.
   */
  code: string
  message: string
}

export function classifyFailure (err: unknown): StreamFailure {
  if (err instanceof StreamTimeoutError) return { outcome: 'timeout', code: `${err.kind}_timeout`, message: err.message }
  if (err instanceof UpstreamError) return { outcome: 'upstream_error', code: 'upstream_error', message: err.message }
  if (err instanceof CancelledError) return { outcome: 'cancelled', code: 'cancelled', message: err.message }
  if (err instanceof ServerShutdownError) return { outcome: 'server_shutdown', code: 'server_shutdown', message: err.message }
  if (err instanceof ClientGoneError) return { outcome: 'client_gone', code: 'client_gone', message: err.message }
  if (err instanceof SlowConsumerError) return { outcome: 'slow_consumer', code: 'slow_consumer', message: err.message }
  if (err instanceof AgentDeletedError) return { outcome: 'agent_deleted', code: 'agent_deleted', message: err.message }
  return { outcome: 'internal_error', code: 'internal_error', message: 'Internal error while streaming' }
}
