import t from 'tap'
import { Cancel, type CancelWatcher } from '../lib/cancel.js'

const watcher = (heard: unknown[]): CancelWatcher => ({ cancelled: (reason) => { heard.push(reason) } })

t.test('an abort reaches every watcher once, with its reason, and a signal made before or after it', async (t) => {
  const cancel = new Cancel()
  const before = cancel.signal
  t.equal(cancel.signal, before, 'one signal, however often it is read')
  const a: unknown[] = []
  const b: unknown[] = []
  const gone: unknown[] = []
  const left = watcher(gone)
  cancel.watch(watcher(a))
  cancel.watch(left)
  cancel.watch(watcher(b))
  cancel.unwatch(left)
  t.notOk(cancel.aborted)
  t.doesNotThrow(() => { cancel.throwIfAborted() })
  const reason = new Error('stop')
  cancel.abort(reason)
  cancel.abort(new Error('again'))
  t.same([a, b, gone], [[reason], [reason], []], 'each watcher once, in order; an unwatched one never')
  t.ok(cancel.aborted)
  t.equal(cancel.reason, reason, 'the first reason stays')
  t.throws(() => { cancel.throwIfAborted() }, reason)
  t.ok(before.aborted, 'the signal made before it is aborted')
  t.equal(before.reason, reason)
  const late: unknown[] = []
  cancel.watch(watcher(late))
  t.same(late, [], 'a watcher added after the abort hears nothing (its owner checks aborted first)')

  const untouched = new Cancel()
  untouched.abort(reason)
  t.ok(untouched.signal.aborted, 'a signal first read after the abort is made aborted')
  t.equal(untouched.signal.reason, reason, 'with the same reason')
})

t.test('following a signal: aborted with it, or at once when it already was', async (t) => {
  const controller = new AbortController()
  const cancel = Cancel.following(controller.signal)
  const heard: unknown[] = []
  cancel.watch(watcher(heard))
  t.notOk(cancel.aborted)
  controller.abort('why')
  t.same(heard, ['why'])
  t.equal(cancel.reason, 'why')
  const already = Cancel.following(AbortSignal.abort('earlier'))
  t.ok(already.aborted)
  t.equal(already.reason, 'earlier')
})
