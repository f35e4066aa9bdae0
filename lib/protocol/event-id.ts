/**
 * Event ids name the stream as well as the position, `<stream id>:<n>`, so a client that
 * reconnects by sending its POST again with Last-Event-ID resumes that stream instead of
 * starting a new turn. Resume also takes the bare position `<n>` (the form ids had before).
 */
export interface EventCursor {
  /** The stream the id names; null for a bare position. */
  streamId: string | null
  /** The last event the client has; 0 for "from the start". */
  seq: number
}

const EVENT_ID = /^(?:(stream-[A-Za-z0-9_-]{1,64}):)?(\d{1,15})$/

export const eventIdPrefix = (streamId: string): string => `${streamId}:`

/** A Last-Event-ID as sent, or null when it is not one of ours. Empty means "from the start". */
export function parseEventId (raw: string): EventCursor | null {
  if (raw === '') return { streamId: null, seq: 0 }
  const match = EVENT_ID.exec(raw)
  if (match === null) return null
  return { streamId: match[1] ?? null, seq: Number(match[2]) }
}
