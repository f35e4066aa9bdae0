import t from 'tap'
import { AgentCache } from '../lib/store/agent-cache.js'
import type { ControlListener } from '../lib/coord/coordinator.js'
import type { Agent } from '../lib/store/store.js'

const agent = (id: string, name = 'a'): Agent => ({ id, organization_id: 'o', name, description: null, system: null, llm_config: {}, metadata: {}, created_at: '', updated_at: '' })

/** A store that counts reads and can hold one until released; a coordinator that records announcements. */
function setup (opts: { ttlMs?: number, maxEntries?: number, failAnnounce?: boolean } = {}) {
  const agents = new Map<string, Agent>([['a1', agent('a1')], ['a2', agent('a2')], ['a3', agent('a3')]])
  let reads = 0
  let hold: Promise<void> | null = null
  const listeners: ControlListener[] = []
  const announced: string[] = []
  const errors: unknown[] = []
  const cache = new AgentCache({
    getAgent: async (_org, id) => {
      reads++
      const found = agents.get(id) ?? null
      if (hold !== null) await hold
      return found
    }
  }, {
    ttlMs: opts.ttlMs ?? 60_000,
    maxEntries: opts.maxEntries ?? 100,
    onError: (err) => errors.push(err),
    coordinator: {
      onControl: (listener) => { listeners.push(listener) },
      cacheChanged: async (kind, key) => {
        if (opts.failAnnounce === true) throw new Error('redis down')
        announced.push(`${kind}:${key.replace('\0', '/')}`)
      }
    }
  })
  return {
    cache, agents, announced, errors,
    reads: () => reads,
    holdReads: () => { let release = (): void => {}; hold = new Promise((resolve) => { release = () => { hold = null; resolve() } }); return release },
    fromElsewhere: (type: 'agent' | 'cancel', id: string) => { for (const l of listeners) l({ type, id }) }
  }
}

t.test('a found agent is served from memory until it changes; a missing one is read every time', async (t) => {
  const s = setup()
  t.same(await s.cache.get('o', 'a1'), agent('a1'))
  t.same(await s.cache.get('o', 'a1'), agent('a1'))
  t.equal(s.reads(), 1, 'one read for two turns')
  t.equal(await s.cache.get('o', 'nope'), null)
  s.agents.set('nope', agent('nope'))
  t.same(await s.cache.get('o', 'nope'), agent('nope'), 'an agent created after a miss is found at once')
  s.agents.set('a1', agent('a1', 'renamed'))
  await s.cache.changed('o', 'a1')
  t.equal((await s.cache.get('o', 'a1'))?.name, 'renamed', 'changed here: read again')
  t.same(s.announced, ['agent:o/a1'], 'and announced to the other instances')
})

t.test('a change announced by another instance drops the agent; other control messages do not', async (t) => {
  const s = setup()
  await s.cache.get('o', 'a1')
  s.fromElsewhere('cancel', 'o\0a1')
  await s.cache.get('o', 'a1')
  t.equal(s.reads(), 1, 'a cancel is no agent change')
  s.fromElsewhere('agent', 'o\0a1')
  await s.cache.get('o', 'a1')
  t.equal(s.reads(), 2)
})

t.test('a read that raced a change does not cache what it read before it', async (t) => {
  const s = setup()
  const release = s.holdReads()
  const reading = s.cache.get('o', 'a1')
  s.fromElsewhere('agent', 'o\0a1')
  release()
  await reading
  await s.cache.get('o', 'a1')
  t.equal(s.reads(), 2, 'the racing read was not kept')
})

t.test('TTL 0 reads every time; entries expire; the oldest goes past the bound; a failed announcement is reported', async (t) => {
  const off = setup({ ttlMs: 0 })
  await off.cache.get('o', 'a1')
  await off.cache.get('o', 'a1')
  t.equal(off.reads(), 2)
  const short = setup({ ttlMs: 20 })
  await short.cache.get('o', 'a1')
  await new Promise((resolve) => setTimeout(resolve, 40))
  await short.cache.get('o', 'a1')
  t.equal(short.reads(), 2, 'read again after its TTL')
  const small = setup({ maxEntries: 2 })
  for (const id of ['a1', 'a2', 'a3']) await small.cache.get('o', id)
  await small.cache.get('o', 'a3')
  await small.cache.get('o', 'a2')
  t.equal(small.reads(), 3, 'the two newest stayed')
  await small.cache.get('o', 'a1')
  t.equal(small.reads(), 4, 'the oldest was dropped')
  const failing = setup({ failAnnounce: true })
  await failing.cache.changed('o', 'a1')
  t.match(failing.errors, [{ message: 'redis down' }])
})
