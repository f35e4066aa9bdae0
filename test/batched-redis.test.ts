import t, { type Test } from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis, type RedisOptions } from 'ioredis'
import { BatchedRedis } from '../lib/coord/batched-redis.js'
import { REDIS_URL } from './helpers/redis.js'
import { until, within } from './helpers/settle.js'

/**
 * A Redis stand-in on a real socket that answers only when told: it records, for every chunk it
 * reads, the commands that chunk completed, so a test sees which commands left in one write.
 */
async function heldRedis (t: Test): Promise<{ port: number, chunks: string[][], connections: () => number, reply: (...lines: string[]) => void, drop: () => void }> {
  const chunks: string[][] = []
  let connections = 0
  let client: net.Socket | undefined
  let unread = ''
  const server = net.createServer((socket) => {
    connections++
    client = socket
    unread = ''
    socket.setEncoding('latin1')
    socket.on('data', (data: string) => {
      unread += data
      const commands: string[] = []
      // Each command is an array of bulk strings; every test command's arguments are plain words.
      for (let m = /^\*(\d+)\r\n/.exec(unread); m !== null; m = /^\*(\d+)\r\n/.exec(unread)) {
        const parts = unread.slice(m[0].length).split('\r\n')
        const count = Number(m[1])
        if (parts.length <= count * 2) break
        const args = parts.slice(0, count * 2).filter((_, i) => i % 2 === 1)
        commands.push(args.join(' '))
        unread = parts.slice(count * 2).join('\r\n')
      }
      chunks.push(commands)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { client?.destroy(); server.close() })
  return {
    port: (server.address() as net.AddressInfo).port,
    chunks,
    connections: () => connections,
    reply: (...lines) => { client?.write(lines.map((line) => `${line}\r\n`).join('')) },
    drop: () => { client?.destroy() }
  }
}

async function connected (t: Test, port: number, options: RedisOptions = {}): Promise<BatchedRedis> {
  const redis = new BatchedRedis(`redis://127.0.0.1:${port}`, {
    lazyConnect: true, enableReadyCheck: false, disableClientInfo: true, enableOfflineQueue: false, retryStrategy: () => null, maxRetriesPerRequest: 0, ...options
  })
  redis.on('error', () => {})
  t.teardown(() => { redis.disconnect() })
  await redis.connect()
  return redis
}

t.test('the commands of one event-loop turn leave in one write; those sent while it awaits its replies leave together after its last reply', async (t) => {
  const fake = await heldRedis(t)
  const redis = await connected(t, fake.port)
  const first = ['a', 'b', 'c'].map((key) => redis.get(key))
  await until(() => fake.chunks.length === 1, 5000, 'the first batch')
  t.same(fake.chunks, [['get a', 'get b', 'get c']], 'one write')
  // Sent over several turns of the event loop while the first batch awaits its replies.
  const second: Array<Promise<string | null>> = []
  for (const key of ['d', 'e', 'f']) {
    second.push(redis.get(key))
    await new Promise((resolve) => setImmediate(resolve))
  }
  await sleep(50)
  t.equal(fake.chunks.length, 1, 'nothing more leaves while a batch awaits its replies')
  fake.reply('$1', 'A', '$1', 'B')
  await sleep(50)
  t.equal(fake.chunks.length, 1, 'nor before its last reply')
  fake.reply('$1', 'C')
  t.same(await within(Promise.all(first), 5000, 'the first batch\'s replies'), ['A', 'B', 'C'])
  await until(() => fake.chunks.length === 2, 5000, 'the second batch')
  t.same(fake.chunks[1], ['get d', 'get e', 'get f'], 'what waited left in one write')
  fake.reply('$1', 'D', '$1', 'E', '$-1')
  t.same(await within(Promise.all(second), 5000, 'the second batch\'s replies'), ['D', 'E', null], 'in order, each to its command')
})

t.test('a batch whose last command timed out no longer holds the next one; its late reply settles nothing twice', async (t) => {
  const fake = await heldRedis(t)
  const redis = await connected(t, fake.port, { commandTimeout: 100 })
  const late = redis.get('slow')
  await until(() => fake.chunks.length === 1, 5000, 'the first batch')
  const next = redis.get('next')
  await t.rejects(within(late, 5000, 'the timeout'), /Command timed out/)
  await until(() => fake.chunks.length === 2, 5000, 'the next batch')
  t.same(fake.chunks, [['get slow'], ['get next']])
  fake.reply('$4', 'SLOW', '$4', 'NEXT')
  t.equal(await within(next, 5000, 'the next reply'), 'NEXT', 'the late reply went to the command that timed out, the next one to its own')
  const after = redis.get('after')
  await until(() => fake.chunks.length === 3, 5000, 'a batch after the late reply')
  fake.reply('$5', 'AFTER')
  t.equal(await within(after, 5000, 'its reply'), 'AFTER')
})

t.test('a lost connection fails the batch on the wire and the one waiting behind it, at once', async (t) => {
  const fake = await heldRedis(t)
  const redis = await connected(t, fake.port)
  const onWire = redis.get('a')
  await until(() => fake.chunks.length === 1, 5000, 'the first batch')
  const waiting = redis.get('b')
  fake.drop()
  await t.rejects(within(onWire, 5000, 'the batch on the wire'), /Connection is closed/)
  await t.rejects(within(waiting, 5000, 'the waiting batch'), /writeable|Connection is closed/)
  await t.rejects(within(redis.get('c'), 5000, 'a command after'), /writeable|Connection is closed/, 'and later commands fail at once too (no offline queue)')
})

t.test('after a reconnect, the batch that was on the wire is sent again at once, not after its command timeout', async (t) => {
  const fake = await heldRedis(t)
  // A minute's timeout: waiting for it would fail the test's own five-second waits.
  const redis = await connected(t, fake.port, { retryStrategy: () => 10, maxRetriesPerRequest: 1, commandTimeout: 60_000 })
  const onWire = redis.get('a')
  await until(() => fake.chunks.length === 1, 5000, 'the first batch')
  fake.drop()
  await until(() => fake.connections() === 2 && fake.chunks.length === 2, 5000, 'the reconnect and the batch sent again')
  t.same(fake.chunks, [['get a'], ['get a']])
  fake.reply('$1', 'A')
  t.equal(await within(onWire, 5000, 'the reply on the new connection'), 'A')
  const after = redis.get('b')
  await until(() => fake.chunks.length === 3, 5000, 'the next batch')
  fake.reply('$1', 'B')
  t.equal(await within(after, 5000, 'its reply'), 'B', 'and batches go on as before')
})

t.test('a batch waiting when the connection drops fails at once (no offline queue), unsent', async (t) => {
  const fake = await heldRedis(t)
  const redis = await connected(t, fake.port, { retryStrategy: () => 10, maxRetriesPerRequest: 1, commandTimeout: 60_000 })
  const onWire = redis.get('a')
  await until(() => fake.chunks.length === 1, 5000, 'the first batch')
  const waiting = redis.get('b')
  fake.drop()
  await t.rejects(within(waiting, 5000, 'the waiting batch'), /writeable/)
  await until(() => fake.chunks.length === 2, 5000, 'the batch on the wire sent again')
  t.same(fake.chunks, [['get a'], ['get a']], 'the waiting command was never sent')
  fake.reply('$1', 'A')
  t.equal(await within(onWire, 5000, 'the reply on the new connection'), 'A')
})

t.test('a command sent as the connection is destroyed fails once, unsent, and the client goes on after the reconnect', async (t) => {
  const fake = await heldRedis(t)
  const redis = await connected(t, fake.port, { retryStrategy: () => 10, maxRetriesPerRequest: 1, commandTimeout: 60_000 })
  const unsent = redis.get('a')
  redis.stream.destroy()
  await t.rejects(within(unsent, 5000, 'the unsent command'), /writeable/)
  await until(() => fake.connections() === 2 && redis.status === 'ready', 5000, 'the reconnect')
  const after = redis.get('b')
  await until(() => fake.chunks.length === 1, 5000, 'a batch on the new connection')
  t.same(fake.chunks, [['get b']], 'the failed command was never sent')
  fake.reply('$1', 'B')
  t.equal(await within(after, 5000, 'its reply'), 'B')
})

t.test('on a real Redis: a script Redis lost is loaded again, and the commands behind it are not held', async (t) => {
  const redis = new BatchedRedis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false })
  const admin = new Redis(REDIS_URL)
  t.teardown(() => { redis.disconnect(); admin.disconnect() })
  await redis.connect()
  redis.defineCommand('echoKey', { numberOfKeys: 1, lua: 'return KEYS[1] .. ARGV[1]' })
  const echo = (key: string, arg: string): Promise<string> => (redis as unknown as { echoKey: (k: string, a: string) => Promise<string> }).echoKey(key, arg)
  t.equal(await echo('k', '0'), 'k0')
  await admin.script('FLUSH')
  const keys = Array.from({ length: 20 }, (_, i) => `k${i}`)
  const replies = await within(Promise.all(keys.map((key) => echo(key, '!'))), 5000, 'every script call after SCRIPT FLUSH')
  t.same(replies, keys.map((key) => `${key}!`))
  const key = `test:${randomBytes(6).toString('hex')}`
  t.teardown(async () => { await admin.del(key) })
  t.same(await redis.pipeline().set(key, 'v').get(key).exec(), [[null, 'OK'], [null, 'v']], 'a pipeline writes on its own, as before')
})
