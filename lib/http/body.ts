import type { IncomingMessage } from 'node:http'
import { badRequest, payloadTooLarge, unsupportedMediaType } from '../errors.js'

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i

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
    return JSON.parse(text)
  } catch (err) {
    throw badRequest('Request body is not valid JSON', { reason: (err as Error).message })
  }
}
