import { ServerResponse, type IncomingMessage, type OutgoingHttpHeader, type OutgoingHttpHeaders } from 'node:http'

/** Told when a response's connection closed (an SSE reader): by the one close listener every response has. */
export interface CloseWatcher {
  responseClosed: () => void
}

/**
 * The server's response. The headers every answer carries whatever its route (the request id,
 * Vary, CORS, Allow) are added with `carry` and join the headers of its one `writeHead`, instead
 * of being stored with `setHeader`: Node keeps setHeader's map (an object, an array per header,
 * some 0.6 KB) for the life of the response, so every open stream held it. What `writeHead` is
 * given is dropped once the head is written.
 */
export class AppResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
  /** This request's id (X-Request-Id), set before any route runs. */
  requestId = ''
  /** When the request arrived (performance.now()), for its log line. */
  startedAt = 0
  /** What must hear that this response closed, besides its log line: a field, not a listener closure per stream. */
  closeWatcher: CloseWatcher | null = null
  /** Headers waiting for `writeHead`; null once the head is written. */
  #carried: Record<string, string> | null = {}

  /** Adds a header to the head, whichever route writes it. */
  carry (name: string, value: string): void {
    if (this.#carried !== null) this.#carried[name] = value
  }

  /** Adds a token to Vary (an answer can vary on more than one request header). */
  vary (token: string): void {
    const vary = this.#carried?.Vary
    this.carry('Vary', vary === undefined ? token : `${vary}, ${token}`)
  }

  /** Node calls this too when a response ends without one (`_implicitHeader`), so every answer gets the carried headers. */
  override writeHead (statusCode: number, headers?: string | OutgoingHttpHeaders | OutgoingHttpHeader[], more?: OutgoingHttpHeaders | OutgoingHttpHeader[]): this {
    const carried = this.#carried
    this.#carried = null
    // Object.assign, not `{ ...carried, ...headers }`: see test/hidden-classes.test.ts.
    if (headers === undefined || (typeof headers === 'object' && !Array.isArray(headers))) return super.writeHead(statusCode, Object.assign({}, carried, headers))
    // A reason phrase or headers as a list (no route here writes either): Node merges what is set.
    for (const name in carried) this.setHeader(name, carried[name] as string)
    return typeof headers === 'string' ? super.writeHead(statusCode, headers, more) : super.writeHead(statusCode, headers)
  }
}
