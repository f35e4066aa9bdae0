import type { Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { AgentMemServer } from '../../lib/server.js'

export function timerCount (): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
}

/** Waits for `check` to hold, polling every 10 ms; throws (failing the test) when it has not within `timeoutMs`. */
export async function until (check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(10)
  }
}

/** `pending`, or a rejection naming `what` when it has not settled within `timeoutMs`. */
export async function within<T> (pending: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  const timer = new AbortController()
  const late = sleep(timeoutMs, undefined, { signal: timer.signal }).then(() => { throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`) })
  try {
    return await Promise.race([pending, late])
  } finally {
    timer.abort()
    late.catch(() => {})
  }
}

/** The invariants every ending must leave behind: no live stream, no timer left over. */
export async function assertSettled (t: Test, app: AgentMemServer, timersBefore: number): Promise<void> {
  await until(() => app.streams().length === 0, 5000, 'no stream left active')
  await until(() => timerCount() <= timersBefore, 5000, `timers back to baseline (${timerCount()} <= ${timersBefore})`)
}
