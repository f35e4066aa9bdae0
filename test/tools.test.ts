import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { ToolRegistry, type ToolContext } from '../lib/tools/registry.js'
import { MemoryService } from '../lib/memory/service.js'
import { SqliteStore } from '../lib/store/sqlite.js'

function context (signal = new AbortController().signal): ToolContext {
  return { signal, scope: { orgId: 'o', agentId: 'a', userId: 'u' }, sessionId: 's', memories: new MemoryService(new SqliteStore(':memory:')), memoryOps: [] }
}

const echo = {
  name: 'echo',
  description: 'echoes',
  parameters: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'], additionalProperties: false },
  handler: async (args: Record<string, unknown>) => args.text
}

t.test('registration is checked', async (t) => {
  const tools = new ToolRegistry(1000)
  tools.register(echo)
  t.throws(() => tools.register(echo), /already registered: echo/)
  t.throws(() => tools.register({ ...echo, name: 'has space' }), /Tool name must match/)
  t.same(tools.specs(), [{ name: 'echo', description: 'echoes', parameters: echo.parameters }])
})

t.test('every failure becomes a failed outcome, never a throw', async (t) => {
  // AbortSignal.timeout does not keep the process alive; a server does, so this test must too.
  const alive = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(alive))
  const tools = new ToolRegistry(50)
  tools.register(echo)
  tools.register({ ...echo, name: 'object', handler: async () => ({ a: 1 }) })
  tools.register({ ...echo, name: 'boom', handler: async () => { throw new Error('kaput') } })
  tools.register({ ...echo, name: 'stuck', handler: async () => await new Promise(() => {}) })
  tools.register({ ...echo, name: 'noargs', parameters: { type: 'object' }, handler: async (args) => Object.keys(args).length })
  t.same(await tools.run('echo', '{"text":"hi"}', context()), { ok: true, args: { text: 'hi' }, result: 'hi' })
  t.same(await tools.run('object', '{"text":"x"}', context()), { ok: true, args: { text: 'x' }, result: '{"a":1}' })
  t.same(await tools.run('noargs', '', context()), { ok: true, args: {}, result: '0' }, 'empty arguments mean {}')
  t.same(await tools.run('echo', '{"text":', context()), { ok: false, args: '{"text":', error: 'Arguments are not valid JSON' })
  t.same(await tools.run('nope', '{}', context()), { ok: false, args: {}, error: 'Unknown tool: nope' })
  t.match(await tools.run('echo', '{"text":3}', context()), { ok: false, error: /Invalid arguments: data\/text must be string/ })
  t.match(await tools.run('boom', '{"text":"x"}', context()), { ok: false, error: 'kaput' })
  t.match(await tools.run('stuck', '{"text":"x"}', context()), { ok: false, error: 'Tool timed out after 50 ms' }, 'a handler ignoring its signal is cut at the timeout')
  const controller = new AbortController()
  const running = tools.run('stuck', '{"text":"x"}', context(controller.signal))
  controller.abort(new Error('client gone'))
  t.match(await running, { ok: false, error: 'client gone' }, 'a disconnect ends the wait at once')
})

t.test('the timeout fires even when the collector runs while a handler is stuck', async (t) => {
  const alive = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(alive))
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const tools = new ToolRegistry(200)
  tools.register({ ...echo, name: 'stuck', handler: async () => await new Promise(() => {}) })
  const running = tools.run('stuck', '{"text":"x"}', context())
  for (let i = 0; i < 5; i++) {
    gc()
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  // With a collected timeout signal the run would never end: fail after 5 s instead of hanging.
  let guard: NodeJS.Timeout | undefined
  const stillWaiting = new Promise((resolve) => { guard = setTimeout(resolve, 5000, 'still waiting after 5 s') })
  t.match(await Promise.race([running, stillWaiting]), { ok: false, error: 'Tool timed out after 200 ms' })
  clearTimeout(guard)
})
