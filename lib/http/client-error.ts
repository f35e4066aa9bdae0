import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { HttpError } from '../errors.js'

/** What Node's parser rejected, in our error shape; Node's own answer would be an empty body. */
function describe (code: string | undefined): HttpError {
  if (code === 'HPE_HEADER_OVERFLOW') return new HttpError('HEADERS_TOO_LARGE', 'Request headers are too large')
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return new HttpError('REQUEST_TIMEOUT', 'Request was not received in time')
  return new HttpError('BAD_REQUEST', 'Malformed HTTP request', { parser: code })
}

/**
 * For the server's 'clientError' event: a request that never became a request (bad request
 * line, oversized or malformed headers, conflicting lengths) still gets the JSON error body.
 */
export function answerClientError (err: NodeJS.ErrnoException, socket: Duplex): void {
  // A reset peer, or a socket that already answered: nobody to tell.
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const error = describe(err.code)
  const body = JSON.stringify(error.toBody())
  socket.end(`HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] as string}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
}
