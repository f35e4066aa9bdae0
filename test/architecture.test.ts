import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'

const LIB = path.resolve(import.meta.dirname, '../lib')
const files = readdirSync(LIB, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join(LIB, f))

/** Every relative import of a module, type-only ones included (a cycle of types still ties the modules together). */
function importsOf (file: string): string[] {
  const source = readFileSync(file, 'utf8')
  return [...source.matchAll(/^(?:import|export)\b[^'"]*?from\s+'(\.{1,2}\/[^']+)'/gm)]
    .map((m) => path.resolve(path.dirname(file), (m[1] as string).replace(/\.js$/, '.ts')))
}

t.test('lib/ has no import cycle', async (t) => {
  const graph = new Map(files.map((f) => [f, importsOf(f)]))
  t.ok(graph.size > 50, 'the modules were read')
  const cycles: string[] = []
  const state = new Map<string, 'open' | 'done'>()
  const visit = (file: string, trail: string[]): void => {
    if (state.get(file) === 'done') return
    if (state.get(file) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(file)), file].map((f) => path.relative(LIB, f)).join(' -> '))
      return
    }
    state.set(file, 'open')
    for (const next of graph.get(file) ?? []) visit(next, [...trail, file])
    state.set(file, 'done')
  }
  for (const file of graph.keys()) visit(file, [])
  t.same(cycles, [])
})
