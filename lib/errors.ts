/**
 * Every error the API can answer with, in one place, so codes stay stable.
 * The body shape `{code, message, details, timestamp}` is the public contract.
 */
export type ErrorCode =
  | 'BAD_REQUEST'
  | 'VALIDATION_ERROR'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'REQUEST_TIMEOUT'
  | 'CONFLICT'
  | 'GONE'
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'QUOTA_EXCEEDED'
  | 'HEADERS_TOO_LARGE'
  | 'UPSTREAM_ERROR'
  | 'UPSTREAM_TIMEOUT'
  | 'SERVICE_UNAVAILABLE'
  | 'INTERNAL_ERROR'

export interface ErrorBody {
  code: ErrorCode
  message: string
  details: unknown
  timestamp: string
}

export class HttpError extends Error {
  readonly status: number
  readonly code: ErrorCode
  readonly details: unknown
  readonly headers: Record<string, string>

  constructor (status: number, code: ErrorCode, message: string, details: unknown = null, headers: Record<string, string> = {}) {
    super(message)
    this.name = 'HttpError'
    this.status = status
    this.code = code
    this.details = details
    this.headers = headers
  }

  toBody (): ErrorBody {
    return { code: this.code, message: this.message, details: this.details, timestamp: new Date().toISOString() }
  }
}

export const badRequest = (message: string, details: unknown = null): HttpError =>
  new HttpError(400, 'BAD_REQUEST', message, details)

export const validationError = (details: unknown): HttpError =>
  new HttpError(400, 'VALIDATION_ERROR', 'Request body failed validation', details)

export const unauthorized = (message: string): HttpError =>
  new HttpError(401, 'UNAUTHORIZED', message, null, { 'WWW-Authenticate': 'Bearer' })

export const notFound = (what: string): HttpError =>
  new HttpError(404, 'NOT_FOUND', `${what} not found`)

export const methodNotAllowed = (allow: string[]): HttpError =>
  new HttpError(405, 'METHOD_NOT_ALLOWED', 'Method not allowed', { allow }, { Allow: allow.join(', ') })

export const payloadTooLarge = (limit: number): HttpError =>
  new HttpError(413, 'PAYLOAD_TOO_LARGE', `Request body exceeds ${limit} bytes`, { limit }, { Connection: 'close' })

export const unsupportedMediaType = (got: string | undefined): HttpError =>
  new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json', { content_type: got ?? null })

export const conflict = (message: string): HttpError =>
  new HttpError(409, 'CONFLICT', message)

export const gone = (message: string, details: unknown = null): HttpError =>
  new HttpError(410, 'GONE', message, details)

export const idempotencyKeyReused = (): HttpError =>
  new HttpError(422, 'IDEMPOTENCY_KEY_REUSED', 'Idempotency-Key was already used with a different request')

export const quotaExceeded = (scope: 'tenant' | 'global', limit: number, retryAfterSeconds: number): HttpError =>
  new HttpError(429, 'QUOTA_EXCEEDED', `Too many concurrent streams (${scope} limit ${limit})`, { scope, limit },
    { 'Retry-After': String(retryAfterSeconds) })

export const upstreamError = (message: string, details: unknown = null): HttpError =>
  new HttpError(502, 'UPSTREAM_ERROR', message, details)

export const upstreamTimeout = (ms: number): HttpError =>
  new HttpError(504, 'UPSTREAM_TIMEOUT', `LLM upstream did not answer within ${ms} ms`, { timeout: 'first_token', ms })

export const serviceUnavailable = (message: string): HttpError =>
  new HttpError(503, 'SERVICE_UNAVAILABLE', message)

export const coordinatorUnavailable = (): HttpError =>
  new HttpError(503, 'SERVICE_UNAVAILABLE', 'Stream coordinator (Redis) unreachable; try again shortly', { dependency: 'redis' },
    { 'Retry-After': '1' })

export const internalError = (): HttpError =>
  new HttpError(500, 'INTERNAL_ERROR', 'Internal server error')
