/** The distinct lower-case words of free text, letters and digits only, so they are never query syntax. */
export function ftsWords (text: string): string[] | null {
  const words = text.toLowerCase().match(/[\p{L}\p{N}]+/gu)
  return words === null ? null : [...new Set(words)]
}
