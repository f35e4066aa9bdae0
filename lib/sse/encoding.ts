/**
 * Whether an Accept-Encoding header allows gzip (RFC 9110 §12.5.3): listed, or covered by `*`,
 * with a q-value above 0. Pure.
 */
export function acceptsGzip (header: string | undefined): boolean {
  if (header === undefined) return false
  let star: boolean | null = null
  for (const part of header.split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';')
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
    const allowed = q === undefined || Number(q.slice(2)) > 0
    if (name.trim() === 'gzip' || name.trim() === 'x-gzip') return allowed
    if (name.trim() === '*') star = allowed
  }
  return star === true
}
