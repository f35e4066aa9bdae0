/**
 * Pure SSE framing per the WHATWG "server-sent events" spec. No I/O.
 * A line break inside data starts a new `data:` line; the parser joins them back with LF.
 */
const LINE_BREAK = /\r\n|\r|\n/
const FORBIDDEN_IN_FIELD = /[\r\n\0]/

export class FramingError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'FramingError'
  }
}

function checkField (name: string, value: string): void {
  if (FORBIDDEN_IN_FIELD.test(value)) throw new FramingError(`SSE ${name} must not contain CR, LF or NUL`)
}

export interface EventFields {
  id?: string
  event?: string
}

export function frameEvent (data: string, fields: EventFields = {}): string {
  let out = ''
  if (fields.id !== undefined) {
    checkField('id', fields.id)
    out += `id: ${fields.id}\n`
  }
  if (fields.event !== undefined) {
    checkField('event', fields.event)
    out += `event: ${fields.event}\n`
  }
  return out + dataLines(data)
}

/** `data:` lines and the blank line that ends the block. */
function dataLines (data: string): string {
  // JSON.stringify never emits a raw line break, so the common case is one line and no split.
  if (data.indexOf('\n') === -1 && data.indexOf('\r') === -1) return `data: ${data}\n\n`
  let out = ''
  for (const line of data.split(LINE_BREAK)) out += `data: ${line}\n`
  return out + '\n'
}

/**
 * The numbered events of one stream, ids `<prefix><n>`: the prefix is checked once, into the
 * `id:` line's start that `frameNumbered` takes, and a number needs no check, so each event costs
 * no field check, no options object, and a stream no framer object.
 */
export function idLineOf (idPrefix: string): string {
  checkField('id', idPrefix)
  return `id: ${idPrefix}`
}

/**
 * The frame of event `n` whose data is `line`, which the caller knows holds no CR or LF: JSON
 * text, as every event of a stream is (JSON.stringify escapes both). Unchecked, so a line built of
 * pieces is flattened once, with its frame, instead of once more by a check.
 */
export function frameNumbered (idLine: string, n: number, line: string): string {
  return `${idLine}${n}\ndata: ${line}\n\n`
}

/**
 * Comment lines only, with no blank line after them: a blank line ends a block, and several
 * clients (fetch-event-source, extended-eventsource) dispatch a message with empty data for a
 * block without `data:`. A comment on its own ends nothing and dispatches nothing.
 */
export function frameComment (text: string): string {
  let out = ''
  for (const line of text.split(LINE_BREAK)) out += `: ${line}\n`
  return out
}

/** A `retry:` field line, to ride in the block of the next event (never a block of its own). */
export function frameRetry (ms: number): string {
  if (!Number.isInteger(ms) || ms < 0) throw new FramingError('SSE retry must be a non-negative integer')
  return `retry: ${ms}\n`
}

/** An event of a stream, numbered, as framed on the wire (`id:` line included) so a replay sends the same bytes. */
export interface LoggedEvent {
  id: number
  frame: string
}
