let madeFor = Number.NaN
let made = ''

/**
 * `new Date(ms).toISOString()`, made once per millisecond: under load a turn's two stored
 * messages and its log lines, and many turns, share one (a Date and its string cost some 0.4 µs).
 */
export function isoTime (ms: number = Date.now()): string {
  if (ms !== madeFor) {
    madeFor = ms
    made = new Date(ms).toISOString()
  }
  return made
}
