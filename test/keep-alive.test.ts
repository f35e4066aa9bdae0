import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { KeepAliveTicker, type KeepAliveTarget } from '../lib/sse/keep-alive.js'
import { until } from './helpers/settle.js'

function target (accepts = true): KeepAliveTarget & { calls: number } {
  const t = { calls: 0, listSlot: -1, keepAlive: () => { t.calls++; return accepts } }
  return t
}

t.test('one interval serves every stream, counts what it sent, and runs only while a stream is open', async (t) => {
  const ticks: number[] = []
  const ticker = new KeepAliveTicker(10, (sent) => ticks.push(sent))
  const [a, b, full] = [target(), target(), target(false)]
  ticker.add(a)
  ticker.add(b)
  ticker.add(full)
  t.ok(ticker.running, 'one timer for three streams')
  await until(() => ticks.length >= 3, 5000, 'ticks.length >= 3')
  t.ok(ticks.every((sent) => sent === 2), 'a stream with a full buffer is skipped, not counted')
  t.ok(a.calls >= 3 && b.calls >= 3 && full.calls >= 3, 'every stream is visited each tick')

  ticker.delete(a)
  ticker.delete(b)
  t.ok(ticker.running, 'still running for the last stream')
  ticker.delete(full)
  t.equal(ticker.size, 0)
  t.notOk(ticker.running, 'no stream, no timer')
  const calls = full.calls
  await sleep(30)
  t.equal(full.calls, calls, 'a removed stream is not called again')

  ticker.add(a)
  t.ok(ticker.running, 'the timer comes back with the next stream')
  const was = a.calls
  await until(() => a.calls > was, 5000, 'a.calls > was')
  ticker.delete(a)
  ticker.delete(a)
  t.notOk(ticker.running, 'deleting twice is harmless')
})

t.test('without a tick callback it still sends', async (t) => {
  const ticker = new KeepAliveTicker(5)
  const a = target()
  ticker.add(a)
  await until(() => a.calls >= 2, 5000, 'a.calls >= 2')
  ticker.delete(a)
})
