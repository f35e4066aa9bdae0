import type { IncomingMessage } from 'node:http'
import { badRequest, HttpError, payloadTooLarge, unsupportedMediaType } from '../errors.js'

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i

/**
 * Lone surrogates cannot be stored as UTF-8 (SQLite and PostgreSQL would turn them into U+FFFD
 * silently), and PostgreSQL refuses U+0000 in text outright (SQLite keeps it): both become
 * U+FFFD at the edge, in keys and values alike, so every store takes the same input and what
 * is streamed and what is stored stay equal.
 */
export function storableText (text: string): string {
  const whole = text.isWellFormed() ? text : text.toWellFormed()
  return whole.includes('\0') ? whole.replaceAll('\0', '\uFFFD') : whole
}

function storable (value: unknown): unknown {
  if (typeof value === 'string') return storableText(value)
  if (Array.isArray(value)) return value.map(storable)
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const [key, inner] of Object.entries(value)) out[storableText(key)] = storable(inner)
  return out
}

/**
 * Reads a JSON body, refusing early: a wrong type before reading, a declared length over the
 * limit before reading, and an undeclared (chunked) body as soon as it passes the limit.
 */
export async function readJsonBody (req: IncomingMessage, limit: number): Promise<unknown> {
  const type = req.headers['content-type']
  if (type === undefined || !JSON_TYPE.test(type)) throw unsupportedMediaType(type)
  // A compressed body would be read as if it were plain JSON: refuse it instead.
  const coding = req.headers['content-encoding']
  if (coding !== undefined && coding.toLowerCase() !== 'identity') {
    throw new HttpError('UNSUPPORTED_MEDIA_TYPE', 'Request bodies must not be compressed (Content-Encoding)', { content_encoding: coding })
  }
  const declared = Number(req.headers['content-length'])
  if (declared > limit) throw payloadTooLarge(limit)

  const text = await readText(req, limit)
  if (text.length === 0) throw badRequest('Request body is empty')
  try {
    // Decoded UTF-8 holds no lone surrogate and JSON no raw NUL: only a \uD800-\uDFFF or \u0000
    // escape makes one, so the (slower) rewrite runs only for bodies that have such an escape.
    const parsed: unknown = JSON.parse(text)
    return UNSTORABLE_ESCAPE.test(text) ? storable(parsed) : parsed
  } catch (err) {
    throw badRequest('Request body is not valid JSON', { reason: (err as Error).message })
  }
}

const UNSTORABLE_ESCAPE = /\\u(?:[dD][89a-fA-F]|0000)/

/** Listeners instead of an async iterator: a small body arrives in one chunk, and this stays one promise. */
async function readText (req: IncomingMessage, limit: number): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size <= limit) chunks.push(chunk)
      else {
        // Stop reading: the 413 goes out with Connection: close and the rest is never buffered.
        cleanup()
        req.pause()
        reject(payloadTooLarge(limit))
      }
    }
    const onEnd = (): void => {
      cleanup()
      resolve(chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks, size).toString('utf8'))
    }
    // A request that errors or closes before its end (the client left) would otherwise leave
    // this pending. A 400, not a 500: nobody reads it, but the fault is the client's, not ours.
    const onGone = (): void => {
      cleanup()
      reject(badRequest('Request body ended early: the client closed the connection'))
    }
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onGone)
      req.off('close', onGone)
    }
    req.on('data', onData)
    req.once('end', onEnd)
    req.once('error', onGone)
    req.once('close', onGone)
  })
}
