/**
 * Whether an Accept-Encoding header allows gzip (RFC 9110 §12.5.3): listed, or covered by `*`,
 * with a q-value above 0. Pure.
 */
export function acceptsGzip (header: string | undefined): boolean {
  if (header === undefined) return false
  let star: boolean | null = null
  for (const part of header.split(',')) {
    const [rawName = '', ...params] = part.toLowerCase().split(';')
    const name = rawName.trim()
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
    const allowed = q === undefined || Number(q.slice(2)) > 0
    if (name === 'gzip' || name === 'x-gzip') return allowed
    if (name === '*') star = allowed
  }
  return star === true
}
