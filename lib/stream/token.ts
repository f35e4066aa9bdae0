import { randomFillSync } from 'node:crypto'

const POOL_BYTES = 24 * 128
const pool = Buffer.alloc(POOL_BYTES)
let offset = pool.length

/**
 * `bytes` from the CSPRNG as base64url. The bytes are drawn 3 KiB at a time (as Node does for
 * randomUUID), since one call per stream showed in the profile; each byte is handed out once.
 */
function randomText (bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const text = pool.toString('base64url', offset, offset + bytes)
  offset += bytes
  return text
}

/** A new resume token: 24 random bytes, 32 characters. */
export function newResumeToken (): string {
  return randomText(24)
}

/**
 * A new stream id: 128 random bits, `stream-` and 22 characters. Short, because every event id
 * carries it (`<stream id>:<n>`, so a re-POST with Last-Event-ID names its stream).
 */
export function newStreamId (): string {
  return `stream-${randomText(16)}`
}
