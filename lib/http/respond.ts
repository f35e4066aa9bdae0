import type { ServerResponse } from 'node:http'
import { HttpError, internalError } from '../errors.js'

export function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body)
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(payload)
  })
  res.end(payload)
}

export function sendNoContent (res: ServerResponse): void {
  res.writeHead(204)
  res.end()
}

/** Known errors keep their status; anything else is a 500 that reveals nothing internal. */
export function sendError (res: ServerResponse, err: unknown): void {
  const httpError = err instanceof HttpError ? err : internalError()
  if (res.headersSent) {
    // Too late for a status code: cutting the connection is the only honest signal left.
    res.destroy()
    return
  }
  sendJson(res, httpError.status, httpError.toBody(), httpError.headers)
}
