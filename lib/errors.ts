/**
 * Every error the API can answer with, in one place, so codes stay stable.
 * The body shape `{code, message, details, timestamp}` is the public contract.
 */
/** Every code the API answers with, and its HTTP status: the one table of them (README and OpenAPI are checked against it). */
export const HTTP_STATUS = {
  BAD_REQUEST: 400,
  VALIDATION_ERROR: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  CONFLICT: 409,
  GONE: 410,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IDEMPOTENCY_KEY_REUSED: 422,
  QUOTA_EXCEEDED: 429,
  HEADERS_TOO_LARGE: 431,
  INTERNAL_ERROR: 500,
  UPSTREAM_ERROR: 502,
  SERVICE_UNAVAILABLE: 503,
  UPSTREAM_TIMEOUT: 504
} as const

export type ErrorCode = keyof typeof HTTP_STATUS

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

  constructor (code: ErrorCode, message: string, details: unknown = null, headers: Record<string, string> = {}) {
    super(message)
    this.name = 'HttpError'
    this.status = HTTP_STATUS[code]
    this.code = code
    this.details = details
    this.headers = headers
  }

  toBody (): ErrorBody {
    return { code: this.code, message: this.message, details: this.details, timestamp: new Date().toISOString() }
  }
}

export const badRequest = (message: string, details: unknown = null): HttpError =>
  new HttpError('BAD_REQUEST', message, details)

export const validationError = (details: unknown): HttpError =>
  new HttpError('VALIDATION_ERROR', 'Request body failed validation', details)

export const unauthorized = (message: string): HttpError =>
  new HttpError('UNAUTHORIZED', message, null, { 'WWW-Authenticate': 'Bearer' })

export const notFound = (what: string): HttpError =>
  new HttpError('NOT_FOUND', `${what} not found`)

export const methodNotAllowed = (allow: string[]): HttpError =>
  new HttpError('METHOD_NOT_ALLOWED', 'Method not allowed', { allow }, { Allow: allow.join(', ') })

export const payloadTooLarge = (limit: number): HttpError =>
  new HttpError('PAYLOAD_TOO_LARGE', `Request body exceeds ${limit} bytes`, { limit }, { Connection: 'close' })

export const unsupportedMediaType = (got: string | undefined): HttpError =>
  new HttpError('UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json', { content_type: got ?? null })

export const forbidden = (message: string, details: unknown = null): HttpError =>
  new HttpError('FORBIDDEN', message, details)

export const conflict = (message: string): HttpError =>
  new HttpError('CONFLICT', message)

export const gone = (message: string, details: unknown = null): HttpError =>
  new HttpError('GONE', message, details)

export const idempotencyKeyReused = (): HttpError =>
  new HttpError('IDEMPOTENCY_KEY_REUSED', 'Idempotency-Key was already used with a different request')

export const quotaExceeded = (scope: 'tenant' | 'global', limit: number, retryAfterSeconds: number): HttpError =>
  new HttpError('QUOTA_EXCEEDED', `Too many concurrent streams (${scope} limit ${limit})`, { scope, limit },
    { 'Retry-After': String(retryAfterSeconds) })

export const serviceUnavailable = (message: string): HttpError =>
  new HttpError('SERVICE_UNAVAILABLE', message)

export const coordinatorUnavailable = (): HttpError =>
  new HttpError('SERVICE_UNAVAILABLE', 'Stream coordinator (Redis) unreachable; try again shortly', { dependency: 'redis' },
    { 'Retry-After': '1' })

export const internalError = (): HttpError =>
  new HttpError('INTERNAL_ERROR', 'Internal server error')
