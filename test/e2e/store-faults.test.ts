import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { SqliteStore } from '../../lib/store/sqlite.js'
import type { Store } from '../../lib/store/store.js'
import { startApp } from '../helpers/server.js'
import { startUpstream } from '../helpers/upstream.js'
import { until } from '../helpers/settle.js'
import { request, type StreamClient } from '../helpers/sse-client.js'

/** The real SQLite store with a switch that makes chosen methods fail, as a full or read-only disk would. */
function faultyStore (): { store: Store, fail: Set<keyof Store> } {
  const inner = new SqliteStore(':memory:')
  const fail = new Set<keyof Store>()
  const store = new Proxy(inner, {
    get (target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      return async (...args: unknown[]) => {
        if (fail.has(prop as keyof Store)) throw new Error(`disk I/O error in ${String(prop)}`)
        return await value.apply(target, args)
      }
    }
  })
  return { store, fail }
}

t.test('a store failure before streaming is a 500 that reveals nothing, reported to onError', async (t) => {
  const { store, fail } = faultyStore()
  const errors: unknown[] = []
  const { stream, createAgent } = await startApp(t, {}, { store, onError: (e) => errors.push(e) })
  const agentId = await createAgent('org-a')
  fail.add('getAgent')
  const client = stream('org-a', agentId, { message: 'hi' })
  const body = await client.json()
  t.equal(client.status, 500)
  t.same({ ...body, timestamp: 0 }, { code: 'INTERNAL_ERROR', message: 'Internal server error', details: null, timestamp: 0 })
  t.match(errors, [{ message: /disk I\/O error in getAgent/ }])
  fail.clear()
  // Failing later, while the turn is opened (the memory probe), it is the same plain 500.
  fail.add('hasMemories')
  const opening = stream('org-a', agentId, { message: 'hi' })
  t.same({ ...await opening.json(), timestamp: 0 }, { code: 'INTERNAL_ERROR', message: 'Internal server error', details: null, timestamp: 0 })
  t.equal(opening.status, 500)
  t.match(errors, [{ message: /getAgent/ }, { message: /disk I\/O error in hasMemories/ }])
})

t.test('a store failure while saving the reply ends the stream with an error chunk, not done', async (t) => {
  const { store, fail } = faultyStore()
  const upstream = await startUpstream(t)
  upstream.script = { tokens: ['a', 'b'], hangAfterTokens: 1 }
  const errors: unknown[] = []
  const { stream, createAgent, call, app } = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'k', openaiBaseUrl: upstream.url }, { store, onError: (err) => errors.push(err) })
  const agentId = await createAgent('org-a')
  const client = stream('org-a', agentId, { message: 'hi' })
  await client.untilEvents(2)
  // Replies go in batches (appendMessages); a failed batch is retried row by row (appendMessage).
  fail.add('appendMessages')
  fail.add('appendMessage')
  upstream.resume()
  await client.ended
  t.same(client.types(), ['start', 'content', 'content', 'error'])
  t.match(client.last(), { code: 'internal_error', content: 'Internal error while streaming' })
  t.match(errors, [{ message: /appendMessage/ }], 'the cause goes to the log, not to the client')
  t.same(app.streams(), [])

  upstream.script = {}
  const plain = await call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'hi' })
  t.equal(plain.status, 500, 'the user message cannot be stored: plain 500')
  // Streaming, the first byte does not wait for the question's commit; `done` does, so it never comes.
  const unsaved = stream('org-a', agentId, { message: 'hi', session_id: 'unsaved' })
  await unsaved.ended
  t.same(unsaved.types(), ['start', 'content', 'content', 'content', 'error'], 'the reply was streamed, then the turn failed')
  t.match(unsaved.last(), { code: 'internal_error' })
  t.same(await store.listMessages('org-a', agentId, { sessionId: 'unsaved', limit: 5 }), [], 'nothing stored')
  fail.delete('appendMessage')
  fail.delete('appendMessages')
  upstream.script = { tokens: ['a', 'b'], hangAfterTokens: 1 }
  const pending = call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'hi', session_id: 'late-failure' })
  // Fail only once the question is stored: the reply's write is the one that must fail.
  await until(async () => (await store.listMessages('org-a', agentId, { sessionId: 'late-failure', limit: 5 })).length === 1, 5000, 'the question to be stored')
  fail.add('appendMessages')
  fail.add('appendMessage')
  upstream.resume()
  const failed = await pending
  t.equal(failed.status, 500)
  t.match(failed.body, { code: 'INTERNAL_ERROR', message: 'Internal error while streaming' })
})

t.test('non-streaming chat during shutdown answers 503', async (t) => {
  const upstream = await startUpstream(t)
  upstream.script = { tokens: ['a', 'b'], hangAfterTokens: 1 }
  const { app, call, createAgent } = await startApp(t, { llmProvider: 'openai', openaiApiKey: 'k', openaiBaseUrl: upstream.url })
  const agentId = await createAgent('org-a')
  const pending = call('org-a', 'POST', `/api/v1/agents/${agentId}/chat`, { message: 'hi' })
  while (upstream.sentTokens === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  await app.close()
  const res = await pending
  t.equal(res.status, 503)
  t.match(res.body, { code: 'SERVICE_UNAVAILABLE', message: /shutting down/ })
})


t.test('health: /healthz always, /readyz only while the store answers', async (t) => {
  const { store, fail } = faultyStore()
  const { url } = await startApp(t, {}, { store })
  const health = await request(`${url}/healthz`, { method: 'GET' })
  t.equal(health.status, 200)
  t.same(JSON.parse(health.raw), { status: 'ok' })
  const ready = await request(`${url}/readyz`, { method: 'GET' })
  t.same(JSON.parse(ready.raw), { status: 'ready', store: 'sqlite', coordinator: 'local' })
  fail.add('ping')
  const down = await request(`${url}/readyz`, { method: 'GET' })
  t.equal(down.status, 503)
  t.match(JSON.parse(down.raw), { code: 'SERVICE_UNAVAILABLE', message: 'Store unreachable' })
  t.equal((await request(`${url}/healthz`, { method: 'GET' })).status, 200, 'alive even when not ready')
})

t.test('the database file locked by another process mid-turn: an error chunk, nothing announced lost, recovery when released', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'agentmem-lock-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'agentmem.db')
  const upstream = await startUpstream(t)
  const { stream, createAgent, call } = await startApp(t, { databaseUrl: `sqlite:${file}`, llmProvider: 'openai', openaiApiKey: 'k', openaiBaseUrl: upstream.url })
  const agentId = await createAgent('org-a')
  const before = stream('org-a', agentId, { message: 'first' })
  await before.ended
  t.equal(before.last()?.chunk_type, 'done')

  upstream.script = { tokens: ['a', 'b'], hangAfterTokens: 1 }
  const client = stream('org-a', agentId, { message: 'second' })
  await client.untilEvents(2)
  // Another process (a backup tool, a migration) takes the write lock and keeps it.
  const other = new Database(file)
  other.exec('BEGIN EXCLUSIVE')
  upstream.resume()
  await client.ended
  t.match(client.last(), { chunk_type: 'error', code: 'internal_error' }, 'the reply could not be stored: error, not done')
  other.exec('ROLLBACK')
  other.close()

  upstream.script = { tokens: ['c'] }
  const after = stream('org-a', agentId, { message: 'third' })
  await after.ended
  t.equal(after.last()?.chunk_type, 'done', 'writes work again once the lock is gone')
  const sessions = [before, after].map((c) => (c.events[0]?.json as { session_id: string }).session_id)
  for (const sessionId of sessions) {
    const { body } = await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=${sessionId}`)
    t.equal((body.data as unknown[]).length, 2, 'turns that said done are all in history')
  }
})

/**
 * The server on a database file at `file`, fed by an upstream the test holds after one token:
 * `turn(tokens, during)` streams one reply and runs `during` while it is held, which is when the
 * fault strikes. `storedTurns()` counts the turns that said `done` and are in history.
 */
async function appOnDisk (t: Test, file: string): Promise<{ turn: (tokens: string[], during?: () => void) => Promise<StreamClient>, doneTurns: () => Promise<{ said: number, stored: number }> }> {
  const upstream = await startUpstream(t)
  const { stream, createAgent, call } = await startApp(t, {
    databaseUrl: `sqlite:${file}`, llmProvider: 'openai', openaiApiKey: 'k', openaiBaseUrl: upstream.url
  })
  const agentId = await createAgent('org-a')
  const done: string[] = []
  return {
    turn: async (tokens, during) => {
      upstream.script = { tokens, hangAfterTokens: 1 }
      const client = stream('org-a', agentId, { message: 'hello' })
      await client.untilEvents(2)
      during?.()
      upstream.resume()
      await client.ended
      if (client.last()?.chunk_type === 'done') done.push((client.events[0]?.json as { session_id: string }).session_id)
      return client
    },
    doneTurns: async () => {
      let stored = 0
      for (const sessionId of done) {
        const { body } = await call('org-a', 'GET', `/api/v1/agents/${agentId}/chat/history?session_id=${sessionId}`)
        if ((body.data as unknown[]).length === 2) stored++
      }
      return { said: done.length, stored }
    }
  }
}

/** A small filesystem of the test's own (tmpfs) to fill up; null where mount is not permitted. */
function smallFilesystem (t: Test): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'agentmem-fs-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { stdio: 'ignore' })
  } catch {
    rmSync(dir, { recursive: true, force: true })
    return null
  }
  t.teardown(() => {
    execFileSync('umount', ['-l', dir])
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

t.test('the disk fills up mid-run: an error chunk, nothing announced lost, recovery once there is space', async (t) => {
  const dir = smallFilesystem(t)
  if (dir === null) return t.skip('mounting a tmpfs needs root (CI runs as root)')
  const { turn, doneTurns } = await appOnDisk(t, join(dir, 'agentmem.db'))
  t.equal((await turn(['a', 'b'])).last()?.chunk_type, 'done')
  // Full: a filler file takes every free byte while the reply streams.
  const filler = join(dir, 'filler')
  const full = await turn(['x'.repeat(64 * 1024), 'y'.repeat(64 * 1024)], () => {
    try { execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'ignore' }) } catch { /* stops at ENOSPC, as intended */ }
  })
  t.match(full.last(), { chunk_type: 'error', code: 'internal_error' }, 'disk full: an error chunk, not done')
  rmSync(filler)
  t.equal((await turn(['c'])).last()?.chunk_type, 'done', 'space freed: writes work again')
  t.same(await doneTurns(), { said: 2, stored: 2 }, 'every turn that said done is in history')
})

/** An ext4 filesystem of the test's own on a loop device (chattr needs one); null where that is not permitted. */
function ext4Filesystem (t: Test): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'agentmem-ext4-'))
  const image = `${dir}.img`
  let device = ''
  try {
    execFileSync('truncate', ['-s', '16M', image])
    execFileSync('mkfs.ext4', ['-q', image])
    device = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim()
    execFileSync('blockdev', ['--setrw', device])
    execFileSync('mount', [device, dir], { stdio: 'ignore' })
  } catch {
    if (device !== '') execFileSync('losetup', ['-d', device])
    rmSync(image, { force: true })
    rmSync(dir, { recursive: true, force: true })
    return null
  }
  t.teardown(() => {
    execFileSync('sh', ['-c', `chattr -R -i ${dir} 2>/dev/null; umount ${dir}; losetup -d ${device}`])
    rmSync(image, { force: true })
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

t.test('the database files become read-only mid-run: an error chunk, nothing announced lost, recovery once writable', async (t) => {
  const dir = ext4Filesystem(t)
  if (dir === null) return t.skip('a loop-mounted ext4 needs root (CI runs as root)')
  const file = join(dir, 'agentmem.db')
  const { turn, doneTurns } = await appOnDisk(t, file)
  const immutable = (flag: '+i' | '-i'): void => { execFileSync('chattr', [flag, file, `${file}-wal`]) }
  t.equal((await turn(['a', 'b'])).last()?.chunk_type, 'done')
  // chattr +i refuses writes even through descriptors already open, as a read-only remount would.
  const refused = await turn(['a', 'b'], () => immutable('+i'))
  t.match(refused.last(), { chunk_type: 'error', code: 'internal_error' }, 'read-only: an error chunk, not done')
  immutable('-i')
  t.equal((await turn(['c'])).last()?.chunk_type, 'done', 'writable again: writes work again')
  t.same(await doneTurns(), { said: 2, stored: 2 }, 'every turn that said done is in history')
})
