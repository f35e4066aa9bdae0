import type { Test } from 'tap'
import { chromium, type Browser } from 'playwright-core'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Debian's Chromium, headless, with the flags this machine's closed network needs; closed after the test. */
export async function launchChromium (t: Test): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(() => browser.close())
  return browser
}

export interface SeenEvent { id: string, type: string, content: string | null }
export interface PageState { events: SeenEvent[], errors: string[], done: boolean }

/**
 * Runs in the page (passed to page.evaluate): a browser EventSource on `src` with a naive
 * handler, recording every event into window.state until the terminal one.
 */
export function readWithEventSource (src: string): void {
  const w = window as unknown as { state?: PageState }
  const state = w.state ??= { events: [], errors: [], done: false }
  const es = new EventSource(src)
  es.onmessage = (e) => {
    const chunk = JSON.parse(e.data) as { chunk_type: string, content: string | null }
    state.events.push({ id: e.lastEventId, type: chunk.chunk_type, content: chunk.content })
    if (chunk.chunk_type === 'done' || chunk.chunk_type === 'error') {
      es.close()
      state.done = true
    }
  }
}
