/**
 * Decides which event may go out next, so a bug elsewhere cannot emit `content` after `done`
 * or two terminal events. Pure: no I/O, no timers. `reasoning` (an opt-in extension of
 * AgentMem's types) may come before, between and after content and tool rounds, like content.
 *
 *   init --start--> started --content|reasoning|tool_call|memory_update--> streaming
 *   started|streaming --done--> done --close--> ended
 *   started|streaming --error--> errored --close--> ended
 */
export type ChunkType = 'start' | 'content' | 'reasoning' | 'tool_call' | 'memory_update' | 'done' | 'error'
export type StreamState = 'init' | 'started' | 'streaming' | 'done' | 'errored' | 'ended'

export class IllegalTransitionError extends Error {
  readonly from: StreamState
  readonly event: ChunkType | 'close'

  constructor (from: StreamState, event: ChunkType | 'close') {
    super(`Illegal stream transition: ${event} in state ${from}`)
    this.name = 'IllegalTransitionError'
    this.from = from
    this.event = event
  }
}

const LIVE: ReadonlySet<StreamState> = new Set(['started', 'streaming'])

function next (from: StreamState, event: ChunkType): StreamState | undefined {
  if (event === 'start') return from === 'init' ? 'started' : undefined
  if (!LIVE.has(from)) return undefined
  if (event === 'done') return 'done'
  if (event === 'error') return 'errored'
  return 'streaming'
}

export class StreamStateMachine {
  #state: StreamState = 'init'

  get state (): StreamState {
    return this.#state
  }

  /** True while events other than `start` may still be sent. */
  get live (): boolean {
    return LIVE.has(this.#state)
  }

  /** True once the terminal event (`done` or `error`) went out, or the stream ended. */
  get terminated (): boolean {
    return this.#state === 'done' || this.#state === 'errored' || this.#state === 'ended'
  }

  can (event: ChunkType): boolean {
    return next(this.#state, event) !== undefined
  }

  transition (event: ChunkType): StreamState {
    const to = next(this.#state, event)
    if (to === undefined) throw new IllegalTransitionError(this.#state, event)
    this.#state = to
    return to
  }

  /** The connection closes after the terminal event. */
  close (): void {
    if (this.#state !== 'done' && this.#state !== 'errored') throw new IllegalTransitionError(this.#state, 'close')
    this.#state = 'ended'
  }
}
