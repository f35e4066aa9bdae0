/** Anything that hands out an AbortSignal when asked (an AbortController, a Cancel): taken by code that may never need one. */
export interface AbortSource {
  readonly signal: AbortSignal
}

/** Told once, when a Cancel it watches is aborted: an object, so a wait needs no closure. */
export interface CancelWatcher {
  cancelled: (reason: unknown) => void
}

/** What a provider that needs no AbortSignal reads of its request's cancellation. */
export interface CancelView extends AbortSource {
  readonly aborted: boolean
  readonly reason: unknown
  throwIfAborted: () => void
  /** `watcher` hears the abort once; nothing is said to one added after it (check `aborted` first). */
  watch: (watcher: CancelWatcher) => void
  unwatch: (watcher: CancelWatcher) => void
}

const NO_WATCHERS: readonly CancelWatcher[] = []

/**
 * A stream's cancellation, with its AbortSignal made on first read. Node's AbortSignal is an
 * EventTarget with two Maps: some 730 bytes, 940 once listened to, kept for the stream's life.
 * A turn on the built-in model never needs one, and an upstream request makes it when it starts;
 * what can watches instead (the built-in model between tokens, the turn's wait for extraction).
 */
export class Cancel implements CancelView {
  #controller: AbortController | null = null
  #aborted = false
  #reason: unknown = undefined
  /** Replaced, not changed: most turns have none or one. */
  #watchers = NO_WATCHERS

  /** A Cancel that follows `signal` (for a caller that has only a signal). */
  static following (signal: AbortSignal): Cancel {
    const cancel = new Cancel()
    if (signal.aborted) cancel.abort(signal.reason)
    else signal.addEventListener('abort', () => { cancel.abort(signal.reason) }, { once: true })
    return cancel
  }

  get aborted (): boolean {
    return this.#aborted
  }

  get reason (): unknown {
    return this.#reason
  }

  get signal (): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController()
      if (this.#aborted) this.#controller.abort(this.#reason)
    }
    return this.#controller.signal
  }

  throwIfAborted (): void {
    if (this.#aborted) throw this.#reason
  }

  /** Aborts once: the signal, if one was made, then every watcher. */
  abort (reason: unknown): void {
    if (this.#aborted) return
    this.#aborted = true
    this.#reason = reason
    this.#controller?.abort(reason)
    const watchers = this.#watchers
    this.#watchers = NO_WATCHERS
    for (const watcher of watchers) watcher.cancelled(reason)
  }

  watch (watcher: CancelWatcher): void {
    this.#watchers = this.#watchers.concat(watcher)
  }

  unwatch (watcher: CancelWatcher): void {
    this.#watchers = this.#watchers.filter((w) => w !== watcher)
  }
}
