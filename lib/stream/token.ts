import { randomText } from '../random.js'

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
