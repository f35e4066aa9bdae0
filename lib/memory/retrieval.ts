/** Pure ranking helpers: no store, no network. */

/** Reciprocal rank fusion (Cormack et al.): each list adds 1 / (k + rank); k = 60 as in the paper. */
export function reciprocalRankFusion (rankings: string[][], k = 60): string[] {
  const scores = new Map<string, number>()
  for (const ranking of rankings) {
    ranking.forEach((id, rank) => scores.set(id, (scores.get(id) ?? 0) + 1 / (k + rank + 1)))
  }
  // Map iteration order keeps the first list's order among equal scores.
  return [...scores.entries()].sort((a, b) => b[1] - a[1]).map(([id]) => id)
}

export function cosineSimilarity (a: number[], b: number[]): number {
  let dot = 0
  let na = 0
  let nb = 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a[i] as number
    const y = b[i] as number
    dot += x * y
    na += x * x
    nb += y * y
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb)
}
