import type { IncomingMessage } from 'node:http'
import { badRequest, payloadTooLarge, unsupportedMediaType } from '../errors.js'

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i

/**
 * Lone surrogates cannot be stored as UTF-8 (SQLite and PostgreSQL would turn them into U+FFFD
 * silently); making strings well-formed at the edge keeps what is streamed and what is stored equal.
 */
const wellFormed = (_key: string, value: unknown): unknown =>
  typeof value === 'string' && !value.isWellFormed() ? value.toWellFormed() : value

/**
 * Reads a JSON body, refusing early: a wrong type before reading, a declared length over the
 * limit before reading, and an undeclared (chunked) body as soon as it passes the limit.
 */
export async function readJsonBody (req: IncomingMessage, limit: number): Promise<unknown> {
  const type = req.headers['content-type']
  if (type === undefined || !JSON_TYPE.test(type)) throw unsupportedMediaType(type)
  const declared = Number(req.headers['content-length'])
  if (declared > limit) throw payloadTooLarge(limit)

  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length
      if (size > limit) throw payloadTooLarge(limit)
      chunks.push(chunk as Buffer)
    }
  } catch (err) {
    // Stop reading: the 413 goes out with Connection: close and the rest is never buffered.
    req.pause()
    throw err
  }
  const text = Buffer.concat(chunks, size).toString('utf8')
  if (text.length === 0) throw badRequest('Request body is empty')
  try {
    return JSON.parse(text, wellFormed)
  } catch (err) {
    throw badRequest('Request body is not valid JSON', { reason: (err as Error).message })
  }
}
