import { frameEvent } from '../sse/frame.js'
import { STREAM_ENDINGS } from '../stream/outcomes.js'
import { makeChunk, serializeChunk } from './chunk.js'
import { eventIdPrefix } from './event-id.js'

const LOST_MESSAGES = { producer_lost: 'The instance running this stream stopped', stream_lost: 'This stream\'s events were lost' }

/** The terminal event of a stream whose producer is gone, as every reader gets it (the coordinator writes it). */
export function lostFrame (streamId: string, seq: number, code: keyof typeof LOST_MESSAGES): string {
  return frameEvent(serializeChunk(makeChunk('error', { content: LOST_MESSAGES[code] }, { code, retryable: STREAM_ENDINGS[code].retryable })), { id: `${eventIdPrefix(streamId)}${seq}` })
}
