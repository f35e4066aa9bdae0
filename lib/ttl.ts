import { ConfigError } from './config.js'

/** A duration like 30m, 24h or 90d, in ms (the CLI's --ttl, an API key's ttl). */
export function parseTtl (text: string): number {
  const match = /^(\d+)(s|m|h|d)$/.exec(text)
  if (match === null) throw new ConfigError(`ttl must look like 30m, 24h or 7d, got ${text}`)
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd']
  return Number(match[1]) * unit
}
