import type { Message, MessageInput, Store } from './store.js'

interface Pending {
  input: MessageInput
  resolve: (message: Message) => void
  reject: (err: unknown) => void
}

/**
 * The messages (questions and replies) of every turn that reaches the store in one event-loop
 * turn, stored together: one transaction (one WAL commit on SQLite, one round trip on PostgreSQL)
 * instead of one each, in the order they came. A caller's promise settles once its batch
 * committed, so a turn sends `done` only for a reply that is durable. A batch that fails is
 * stored again row by row, so one bad row (its agent just deleted) fails alone and the others
 * still land.
 */
export class GroupCommit {
  readonly #store: Pick<Store, 'appendMessage'>
  /** A store of one's own without batches stores each message on its own, as before. */
  readonly #appendMany: ((inputs: MessageInput[]) => Promise<Message[]>) | undefined
  #pending: Pending[] = []

  constructor (store: Pick<Store, 'appendMessage' | 'appendMessages'>) {
    this.#store = store
    this.#appendMany = store.appendMessages?.bind(store)
  }

  async append (input: MessageInput): Promise<Message> {
    if (this.#appendMany === undefined) return await this.#store.appendMessage(input)
    return await new Promise<Message>((resolve, reject) => {
      // The first of a batch schedules it: after this turn of the event loop, every message that came meanwhile goes with it.
      if (this.#pending.push({ input, resolve, reject }) === 1) setImmediate(this.#flush)
    })
  }

  readonly #flush = (): void => {
    const batch = this.#pending
    this.#pending = []
    const store = this.#store
    void (this.#appendMany as (inputs: MessageInput[]) => Promise<Message[]>)(batch.map((p) => p.input)).then(
      (stored) => { batch.forEach((p, i) => { p.resolve(stored[i] as Message) }) },
      () => { for (const p of batch) store.appendMessage(p.input).then(p.resolve, p.reject) }
    )
  }
}
