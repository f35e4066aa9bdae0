// README's configuration table is held against the one list of options in lib/config.ts.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { OPTION_DOCS, envName } from '../lib/config.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## API'))
const rows = [...section.matchAll(/^\| `([A-Z0-9_]+)` \| ([^|]*) \|/gm)].map((m) => ({ env: m[1] as string, defaultCell: (m[2] as string).trim() }))

t.test('every option is in README\'s table, and nothing else is', async (t) => {
  t.same(rows.map((r) => r.env).sort(), OPTION_DOCS.map((d) => d.env).sort())
})

t.test('README gives each option the default the schema gives it', async (t) => {
  for (const doc of OPTION_DOCS) {
    const row = rows.find((r) => r.env === doc.env)
    if (doc.default === undefined) t.notMatch(row?.defaultCell, /^`[^`]*`$/, `${doc.env}: no default of its own, so no literal one in README`)
    else t.equal(row?.defaultCell, `\`${String(doc.default)}\``, `${doc.env}: ${String(doc.default)}`)
  }
})

t.test('environment names are the options in upper snake case', async (t) => {
  t.equal(envName('streamIdleTimeoutMs'), 'STREAM_IDLE_TIMEOUT_MS')
  t.equal(envName('ui'), 'UI')
})

t.test('README names every error code with its status, and every stream ending', async (t) => {
  const { HTTP_STATUS } = await import('../lib/errors.js')
  const { STREAM_ENDINGS } = await import('../lib/stream/outcomes.js')
  const api = readme.slice(readme.indexOf('## API'), readme.indexOf('### Stream a chat reply'))
  for (const [code, status] of Object.entries(HTTP_STATUS)) {
    t.match(api, new RegExp(`\`${code}\`[^()]*\\(${status}|\`${code}\` and \`\\w+\` \\(${status}`), `${code} (${status})`)
  }
  for (const code of Object.keys(STREAM_ENDINGS)) t.match(api, `\`${code}\``, `stream ending ${code}`)
})
