import { Redis, type Command, type RedisOptions } from 'ioredis'

type CommandStream = Parameters<Redis['sendCommand']>[1]

/**
 * ioredis that batches its commands itself, the way its auto-pipelining does, without the
 * Pipeline auto-pipelining builds per batch. A command sent while a batch awaits its replies
 * waits, and all that waited leave in one write when the batch's last reply is in; the first
 * batch after a quiet spell leaves after a setImmediate, with every command of that event-loop
 * turn. Why not auto-pipelining: its Pipeline defines `length` on each instance as a closure over
 * the pipeline, which gives every batch a hidden class of its own that V8 keeps in the old
 * generation, so each batch and its commands outlive the young generation (about 0.9 KB promoted
 * per command), and its promises and callbacks per command cost more than the command itself.
 */
export class BatchedRedis extends Redis {
  /** Not empty only while a send is scheduled or a batch is on the wire (`#awaited`), never both. */
  #waiting: Command[] = []
  /** The last command of the batch on the wire: its reply (or failure) comes after all the others'. */
  #awaited: Command | undefined

  constructor (url: string, options: RedisOptions) {
    super(url, options)
    // The batch on the wire gets no reply on a closed connection: what ioredis resends after the
    // reconnect (the batch's own commands among them) must not wait for it. What waited behind
    // it, unsent, goes next, and fails at once unless an offline queue takes it.
    this.on('close', () => {
      if (this.#awaited === undefined) return
      this.#awaited = undefined
      if (this.#waiting.length > 0) setImmediate(this.#send)
    })
  }

  override sendCommand (command: Command, stream?: CommandStream): unknown {
    // Pipelines write on a stream of their own; until ready, ioredis fails the command (no offline queue) or it is the handshake.
    if (stream !== undefined || this.status !== 'ready') return super.sendCommand(command, stream)
    // The first to wait while no batch is out schedules one; otherwise the batch's last reply sends it.
    if (this.#waiting.push(command) === 1 && this.#awaited === undefined) setImmediate(this.#send)
    return command.promise
  }

  readonly #send = (): void => {
    const batch = this.#waiting
    this.#waiting = []
    // Hooked on the command, not its promise: a script's promise waits for its own resend when
    // Redis lost the script (NOSCRIPT), and that resend must not wait for it. A timeout or a lost
    // connection settles the command too, so a batch never holds the next one back for good.
    const last = batch[batch.length - 1] as Command
    const { resolve, reject } = last
    last.resolve = (value) => { this.#answered(last); resolve(value) }
    last.reject = (err) => { this.#answered(last); reject(err) }
    this.#awaited = last
    const socket = this.stream
    socket.cork()
    for (const command of batch) super.sendCommand(command)
    socket.uncork()
  }

  #answered (command: Command): void {
    // A reply after the command timed out settles it a second time: the batch was over already.
    if (this.#awaited !== command) return
    this.#awaited = undefined
    if (this.#waiting.length > 0) this.#send()
  }
}
