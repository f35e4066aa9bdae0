import type { ServerResponse } from 'node:http'
import { HttpError, internalError } from '../errors.js'

export function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body)
  // Object.assign, not a spread followed by keys: see test/hidden-classes.test.ts.
  res.writeHead(status, Object.assign({}, headers, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(payload)
  }))
  res.end(payload)
}

export function sendNoContent (res: ServerResponse): void {
  res.writeHead(204)
  res.end()
}

/** Known errors keep their status; anything else is a 500 that reveals nothing internal. */
export function sendError (res: ServerResponse, err: unknown): void {
  const httpError = err instanceof HttpError ? err : internalError()
  /* c8 ignore start -- no route throws after its first byte today (streams report failures in-band);
     this keeps a future one from crashing the process with ERR_HTTP_HEADERS_SENT. */
  if (res.headersSent) {
    res.destroy()
    return
  }
  /* c8 ignore stop */
  sendJson(res, httpError.status, httpError.toBody(), httpError.headers)
}
