import t from 'tap'
import { IllegalTransitionError, StreamStateMachine, type ChunkType, type StreamState } from '../lib/protocol/state-machine.js'

const EVENTS: ChunkType[] = ['start', 'content', 'reasoning', 'tool_call', 'memory_update', 'done', 'error']

/** Drives a machine to `state` through the public API only. */
function machineIn (state: StreamState): StreamStateMachine {
  const sm = new StreamStateMachine()
  const path: Record<StreamState, Array<ChunkType | 'close'>> = {
    init: [],
    started: ['start'],
    streaming: ['start', 'content'],
    done: ['start', 'content', 'done'],
    errored: ['start', 'error'],
    ended: ['start', 'done', 'close']
  }
  for (const step of path[state]) {
    if (step === 'close') sm.close()
    else sm.transition(step)
  }
  t.equal(sm.state, state)
  return sm
}

const LEGAL: Record<StreamState, Partial<Record<ChunkType, StreamState>>> = {
  init: { start: 'started' },
  started: { content: 'streaming', reasoning: 'streaming', tool_call: 'streaming', memory_update: 'streaming', done: 'done', error: 'errored' },
  streaming: { content: 'streaming', reasoning: 'streaming', tool_call: 'streaming', memory_update: 'streaming', done: 'done', error: 'errored' },
  done: {},
  errored: {},
  ended: {}
}

t.test('every (state, event) pair is legal exactly as the table says', async (t) => {
  for (const [from, allowed] of Object.entries(LEGAL) as Array<[StreamState, Partial<Record<ChunkType, StreamState>>]>) {
    for (const event of EVENTS) {
      const sm = machineIn(from)
      const to = allowed[event]
      t.equal(sm.can(event), to !== undefined, `can(${event}) in ${from}`)
      if (to === undefined) {
        t.throws(() => sm.transition(event), IllegalTransitionError, `${event} in ${from} throws`)
        t.equal(sm.state, from, 'state unchanged after an illegal event')
      } else {
        t.equal(sm.transition(event), to, `${from} --${event}--> ${to}`)
      }
    }
  }
})

t.test('close is legal only after a terminal event', async (t) => {
  for (const state of ['init', 'started', 'streaming', 'ended'] as StreamState[]) {
    const sm = machineIn(state)
    const err = t.throws(() => sm.close(), IllegalTransitionError) as IllegalTransitionError
    t.equal(err.event, 'close')
    t.equal(err.from, state)
  }
  for (const state of ['done', 'errored'] as StreamState[]) {
    const sm = machineIn(state)
    sm.close()
    t.equal(sm.state, 'ended')
  }
})

t.test('live and terminated flags follow the state', async (t) => {
  const expected: Record<StreamState, [boolean, boolean]> = {
    init: [false, false],
    started: [true, false],
    streaming: [true, false],
    done: [false, true],
    errored: [false, true],
    ended: [false, true]
  }
  for (const [state, [live, terminated]] of Object.entries(expected) as Array<[StreamState, [boolean, boolean]]>) {
    const sm = machineIn(state)
    t.equal(sm.live, live, `${state} live`)
    t.equal(sm.terminated, terminated, `${state} terminated`)
  }
})

t.test('a full stream has exactly one terminal event', async (t) => {
  const sm = new StreamStateMachine()
  sm.transition('start')
  for (let i = 0; i < 5; i++) sm.transition('content')
  sm.transition('done')
  t.throws(() => sm.transition('error'))
  t.throws(() => sm.transition('done'))
  t.throws(() => sm.transition('content'))
  sm.close()
  t.equal(sm.state, 'ended')
  t.match(new IllegalTransitionError('done', 'content').message, /content in state done/)
})
