/** Tokens gathered before they are joined into one string. */
const FOLD_EVERY = 256

/**
 * A reply built token by token. `text += token` keeps every token plus a ~32-byte string node
 * per token until the string is next read whole: about ten times the text itself, for as long as
 * the stream runs. This keeps a short array of tokens and joins it into one flat string every
 * 256, so a long reply costs little more than its characters.
 */
export class TextBuffer {
  readonly #folded: string[] = []
  readonly #tokens: string[] = []
  #length = 0

  get length (): number {
    return this.#length
  }

  add (token: string): void {
    this.#tokens.push(token)
    this.#length += token.length
    if (this.#tokens.length < FOLD_EVERY) return
    this.#folded.push(this.#tokens.join(''))
    this.#tokens.length = 0
  }

  toString (): string {
    return this.#folded.join('') + this.#tokens.join('')
  }
}
