/** Tokens gathered before they are joined into one string. */
const FOLD_EVERY = 256

/**
 * A reply built token by token. `text += token` keeps every token plus a ~32-byte string node
 * per token until the string is next read whole: about ten times the text itself, for as long as
 * the stream runs. This keeps a short array of tokens and joins it into one flat string every
 * 256, so a long reply costs little more than its characters.
 */
export class TextBuffer {
  /** The folded tokens, one string (a fold adds one concatenation node, not a token's). */
  #folded = ''
  /** Made with its first token: the first push onto an empty array reserves 17 slots (184 bytes), an idle stream's one token needs one. */
  #tokens: string[] | null = null
  #length = 0

  get length (): number {
    return this.#length
  }

  add (token: string): void {
    this.#length += token.length
    const tokens = this.#tokens
    if (tokens === null) {
      this.#tokens = [token]
      return
    }
    tokens.push(token)
    if (tokens.length < FOLD_EVERY) return
    this.#folded += tokens.join('')
    tokens.length = 0
  }

  toString (): string {
    return this.#folded + (this.#tokens?.join('') ?? '')
  }
}
