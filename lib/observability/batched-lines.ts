import { writeSync } from 'node:fs'

type WriteSync = (fd: number, buffer: Buffer, offset: number) => number

/** Something to sleep on between tries at a full non-blocking pipe (as sonic-boom does). */
const napCell = new Int32Array(new SharedArrayBuffer(4))

/**
 * pino's destination: the lines logged in one turn of the event loop are written together, with
 * one `write(2)` when the turn's I/O is done (`setImmediate`), instead of one each. Under load
 * many streams end in one turn, each with two lines, and a write to a pipe or file costs more
 * than making the line. The write is synchronous, so a line waits in memory for the rest of its
 * turn at most; process exit (a crash included) writes what waits. Only a kill loses it.
 */
export class BatchedLines {
  readonly #fd: number
  readonly #write: WriteSync
  #pending = ''
  #scheduled = false

  constructor (fd: number, write: WriteSync = writeSync) {
    this.#fd = fd
    this.#write = write
  }

  write (line: string): void {
    this.#pending += line
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(this.flush)
  }

  /** Writes what waits, now. A full non-blocking pipe is waited out; a closed one loses the lines (no one can read them). */
  readonly flush = (): void => {
    this.#scheduled = false
    if (this.#pending === '') return
    const out = Buffer.from(this.#pending)
    this.#pending = ''
    for (let at = 0; at < out.length;) {
      try {
        at += this.#write(this.#fd, out, at)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return
        Atomics.wait(napCell, 0, 0, 1)
      }
    }
  }
}

let stdout: BatchedLines | null = null

/** The one batcher of standard output, whatever the number of loggers: it flushes at exit. */
export function batchedStdout (): BatchedLines {
  if (stdout === null) {
    const lines = new BatchedLines(1)
    process.on('exit', lines.flush)
    stdout = lines
  }
  return stdout
}
