import { randomFillSync } from 'node:crypto'

const POOL_BYTES = 24 * 128
const pool = Buffer.alloc(POOL_BYTES)
let offset = pool.length

/**
 * Where `bytes` fresh bytes from the CSPRNG start in the pool. They are drawn 3 KiB at a time
 * (as Node does for randomUUID), since one call per stream showed in the profile; each byte is
 * handed out once.
 */
function take (bytes: number): number {
  if (offset + bytes > pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const at = offset
  offset += bytes
  return at
}

/** `bytes` random bytes as base64url. */
export function randomText (bytes: number): string {
  const at = take(bytes)
  return pool.toString('base64url', at, at + bytes)
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/**
 * A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits. Ids made in
 * time order land at the end of a B-tree index (SQLite's and PostgreSQL's unique index on the
 * id) instead of at a random page of it, as version 4 ids do.
 */
export function uuidV7 (): string {
  const at = take(10)
  const ms = Date.now()
  const high = Math.floor(ms / 0x10000).toString(16).padStart(8, '0')
  const low = (ms % 0x10000).toString(16).padStart(4, '0')
  const b = (i: number): string => HEX[pool[at + i] as number] as string
  const version = HEX[0x70 | ((pool[at] as number) & 0x0f)] as string
  const variant = HEX[0x80 | ((pool[at + 2] as number) & 0x3f)] as string
  return `${high}-${low}-${version}${b(1)}-${variant}${b(3)}-${b(4)}${b(5)}${b(6)}${b(7)}${b(8)}${b(9)}`
}
