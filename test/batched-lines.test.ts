import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as turnEnd } from 'node:timers/promises'
import { BatchedLines } from '../lib/observability/batched-lines.js'

/** A file to write to, read back as text. */
function tempFile (t: Test): { fd: number, text: () => string } {
  const dir = mkdtempSync(join(tmpdir(), 'batched-lines-'))
  const path = join(dir, 'log')
  const fd = openSync(path, 'w')
  t.teardown(() => {
    try { closeSync(fd) } catch {}
    rmSync(dir, { recursive: true, force: true })
  })
  return { fd, text: () => readFileSync(path, 'utf8') }
}

t.test('the lines of one event-loop turn reach the file together, in one write, once the turn is over', async (t) => {
  const file = tempFile(t)
  const writes: number[] = []
  const lines = new BatchedLines(file.fd, (fd, buffer, offset) => {
    writes.push(buffer.length - offset)
    return writeSync(fd, buffer, offset)
  })
  lines.write('{"n":1}\n')
  lines.write('{"n":2,"text":"é"}\n')
  lines.write('{"n":3}\n')
  t.equal(file.text(), '', 'nothing is written while the turn runs')
  await turnEnd()
  t.equal(file.text(), '{"n":1}\n{"n":2,"text":"é"}\n{"n":3}\n', 'every line, in order, as UTF-8')
  t.same(writes, [Buffer.byteLength(file.text())], 'with one write')
  lines.write('{"n":4}\n')
  await turnEnd()
  t.equal(file.text().split('\n').length, 5, 'a later turn\'s line follows in a write of its own')
  t.equal(writes.length, 2)
  lines.flush()
  t.equal(writes.length, 2, 'flushing with nothing waiting writes nothing')
})

t.test('a short write or a full pipe (EAGAIN) is written on until every byte is out', async (t) => {
  const file = tempFile(t)
  let calls = 0
  const lines = new BatchedLines(file.fd, (fd, buffer, offset) => {
    calls++
    if (calls === 2) throw Object.assign(new Error('full'), { code: 'EAGAIN' })
    // At most 5 bytes a call, as a nearly full pipe takes them.
    return writeSync(fd, buffer, offset, Math.min(5, buffer.length - offset))
  })
  const text = '{"line":"one"}\n{"line":"two"}\n'
  for (const line of text.split(/(?<=\n)/)) lines.write(line)
  lines.flush()
  t.equal(file.text(), text, 'the file has all of it, unchanged')
  t.equal(calls, Math.ceil(text.length / 5) + 1, 'one call per 5 bytes, and the one that found the pipe full')
})

t.test('a destination that is gone loses its lines and throws nothing: logging never takes the server down', async (t) => {
  const file = tempFile(t)
  closeSync(file.fd)
  const lines = new BatchedLines(file.fd)
  lines.write('{"lost":true}\n')
  t.doesNotThrow(() => { lines.flush() })
  lines.write('{"next":true}\n')
  await turnEnd()
  t.pass('nor does the flush at the end of a turn')
})

t.test('a process that crashes writes the lines of its last turn before it goes', async (t) => {
  const script = [
    "const { createLogger } = await import('./lib/observability/logger.ts')",
    'const logger = createLogger("info")',
    'logger.info({ req_id: "last-words" }, "stream end")',
    'logger.info({ req_id: "very-last" }, "request")',
    'throw new Error("crash in the same turn")'
  ].join('\n')
  const proc = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout.setEncoding('utf8').on('data', (text: string) => { out += text })
  proc.stderr.resume()
  const [code] = await once(proc, 'exit')
  t.equal(code, 1, 'it crashed')
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { req_id: string, msg: string })
  t.same(lines.map((l) => [l.req_id, l.msg]), [['last-words', 'stream end'], ['very-last', 'request']], 'both lines are on stdout, in order')
})
