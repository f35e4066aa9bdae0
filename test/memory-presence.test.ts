import t from 'tap'
import { MemoryService, type MemoryScope } from '../lib/memory/service.js'
import { SqliteStore } from '../lib/store/sqlite.js'
import type { ControlListener } from '../lib/coord/coordinator.js'

const signal = new AbortController().signal
const scope: MemoryScope = { orgId: 'o', agentId: '', userId: 'u1' }

/** A real SQLite store that counts probes and searches and can hold a probe; a coordinator that records what is said. */
async function setup (t: Tap.Test, opts: { ttlMs?: number, withPresence?: boolean, withProbe?: boolean } = {}) {
  const calls = { probes: 0, searches: 0 }
  let hold: Promise<void> | null = null
  class CountingStore extends SqliteStore {
    override async searchMemories (...args: Parameters<SqliteStore['searchMemories']>): ReturnType<SqliteStore['searchMemories']> {
      calls.searches++
      return await super.searchMemories(...args)
    }

    override async hasMemories (...args: Parameters<SqliteStore['hasMemories']>): Promise<boolean> {
      calls.probes++
      const found = await super.hasMemories(...args)
      if (hold !== null) await hold
      return found
    }
  }
  const store = new CountingStore(':memory:')
  t.teardown(async () => await store.close())
  // A store of someone's own, written before hasMemories existed.
  if (opts.withProbe === false) Object.defineProperty(store, 'hasMemories', { value: undefined })
  const agent = await store.createAgent('o', { name: 'a' })
  const listeners: ControlListener[] = []
  const announced: string[] = []
  const service = new MemoryService(store, undefined, opts.withPresence === false
    ? undefined
    : {
        ttlMs: opts.ttlMs ?? 60_000,
        maxEntries: 100,
        onError: () => {},
        coordinator: { onControl: (l) => { listeners.push(l) }, cacheChanged: async (kind, key) => { announced.push(`${kind}:${key.split('\0').join('/')}`) } }
      })
  const at = { ...scope, agentId: agent.id }
  return {
    service, store, calls, announced, at,
    find: async (query: string) => (await service.retrieve(at, query, 10, { signal })).map((m) => m.content),
    holdProbes: () => { let release = (): void => {}; hold = new Promise((resolve) => { release = () => { hold = null; resolve() } }); return release },
    fromElsewhere: (type: 'memories' | 'agent', id: string) => { for (const l of listeners) l({ type, id }) }
  }
}

t.test('a user with no memories: one probe, then no search at all until a memory is added', async (t) => {
  const s = await setup(t)
  t.same(await s.find('pizza'), [])
  t.same(await s.find('pasta'), [])
  t.same(s.calls, { probes: 1, searches: 0 }, 'the second turn asked nothing of the store')
  await s.service.add(s.at, { user_id: 'u1', content: 'User likes pizza' }, signal)
  t.same(s.announced, [`memories:o/${s.at.agentId}/u1`], 'the other instances are told')
  t.same(await s.find('pizza'), ['User likes pizza'], 'found on the very next turn')
  t.same(s.calls, { probes: 1, searches: 1 }, 'known to have memories: searched without another probe')
  t.same(await s.service.retrieve({ ...s.at, userId: 'u2' }, 'pizza', 10, { signal }), [], 'another user of the agent has none')
})

t.test('a memory added on another instance: the announcement drops what this one knew', async (t) => {
  const s = await setup(t)
  t.same(await s.find('pizza'), [])
  // Written by another instance: this one hears only the announcement.
  await s.store.addMemory('o', s.at.agentId, { user_id: 'u1', content: 'User likes pizza' })
  s.fromElsewhere('agent', `o\0${s.at.agentId}`)
  t.same(await s.find('pizza'), [], 'an agent change is not a memory change: still known empty')
  s.fromElsewhere('memories', `o\0${s.at.agentId}\0u1`)
  t.same(await s.find('pizza'), ['User likes pizza'])
  t.equal(s.calls.probes, 2, 'probed again after the announcement')
})

t.test('a probe that raced an add does not keep "none"', async (t) => {
  const s = await setup(t)
  const release = s.holdProbes()
  const first = s.find('pizza')
  await s.service.add(s.at, { user_id: 'u1', content: 'User likes pizza' }, signal)
  release()
  t.same(await first, [], 'the racing turn read before the memory existed')
  t.same(await s.find('pizza'), ['User likes pizza'], 'and its "none" was not kept')
})

t.test('TTL 0, no presence options, or a store without hasMemories: every turn searches', async (t) => {
  for (const [label, opts] of [['ttl 0', { ttlMs: 0 }], ['no options', { withPresence: false }], ['no probe', { withProbe: false }]] as const) {
    const s = await setup(t, opts)
    await s.find('pizza')
    await s.find('pizza')
    t.equal(s.calls.searches + s.calls.probes >= 2, true, `${label}: the store was asked on both turns`)
    t.equal(s.calls.searches, opts.withProbe === false || opts.withPresence === false ? 2 : 0, `${label}: searches`)
  }
})
