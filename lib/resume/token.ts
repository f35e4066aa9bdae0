import { randomFillSync } from 'node:crypto'

const TOKEN_BYTES = 24
const TOKENS_PER_FILL = 128
const pool = Buffer.alloc(TOKEN_BYTES * TOKENS_PER_FILL)
let offset = pool.length

/**
 * A new resume token: 24 bytes from the CSPRNG as base64url. The bytes are drawn 128 tokens at
 * a time (as Node does for randomUUID), since one call per stream showed in the profile; each
 * byte is handed out once.
 */
export function newResumeToken (): string {
  if (offset === pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const token = pool.toString('base64url', offset, offset + TOKEN_BYTES)
  offset += TOKEN_BYTES
  return token
}
