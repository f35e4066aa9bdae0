// Python's requests and httpx, as their users read an event stream: line by line, json.loads on
// each data line. Text with U+2028, U+2029 and U+0085 must not split a line (str.splitlines does).
import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { startApp } from '../helpers/server.js'

const PYTHON = process.env.PYTHON ?? '/usr/bin/python3'
const SCRIPT = new URL('../clients/python_stream.py', import.meta.url).pathname
const run = promisify(execFile)

const available = await run(PYTHON, ['-c', 'import requests, httpx']).then(() => true, () => false)
// .ci/run installs Debian's python3-requests and python3-httpx; elsewhere say why nothing ran.
const skip = available ? false : `${PYTHON} lacks requests or httpx (apt-get install python3-requests python3-httpx)`

for (const client of ['requests', 'httpx']) {
  t.test(`${client}: every chunk parses, line separators in the text included`, { skip }, async (t) => {
    const { url, token, createAgent } = await startApp(t)
    const agentId = await createAgent('org-a')
    const message = 'one\u2028two\u2029three\u0085four \u000b five'
    const { stdout } = await run(PYTHON, [SCRIPT, client, `${url}/api/v1/agents/${agentId}/chat/stream`, token('org-a'), message])
    const chunks = stdout.trim().split('\n').map((l) => JSON.parse(l) as { chunk_type: string, content: string | null })
    t.equal(chunks[0]?.chunk_type, 'start')
    t.equal(chunks.at(-1)?.chunk_type, 'done')
    t.equal(chunks.filter((c) => c.chunk_type === 'content').map((c) => c.content).join(''), `You said: ${message}`, 'the text round-trips exactly')
  })
}
