import t, { type Test } from 'tap'
import { GroupCommit } from '../lib/store/group-commit.js'
import { SqliteStore } from '../lib/store/sqlite.js'
import type { MessageInput } from '../lib/store/store.js'

async function setup (t: Test) {
  const store = new SqliteStore(':memory:')
  t.teardown(() => store.close())
  const agent = await store.createAgent('o', { name: 'a' })
  const batches: number[] = []
  const singles: string[] = []
  const spy = {
    appendMessages: async (inputs: MessageInput[]) => { batches.push(inputs.length); return await store.appendMessages(inputs) },
    appendMessage: async (input: MessageInput) => { singles.push(input.content); return await store.appendMessage(input) }
  }
  const message = (content: string, agentId = agent.id): MessageInput => ({ organization_id: 'o', agent_id: agentId, user_id: 'u', session_id: 's', role: 'assistant', content, metadata: {} })
  return { store, agent, spy, batches, singles, message }
}

t.test('replies of one event-loop turn go in one batch; each promise settles once its batch committed', async (t) => {
  const { store, agent, spy, batches, message } = await setup(t)
  const commit = new GroupCommit(spy)
  const settled: string[] = []
  const all = ['a', 'b', 'c'].map((c) => commit.append(message(c)).then((m) => { settled.push(m.content); return m }))
  await Promise.resolve()
  t.same(settled, [], 'nothing settles before the batch is written')
  t.same(await store.listMessages('o', agent.id, { limit: 10 }), [], 'and nothing is written within the turn')
  const stored = await Promise.all(all)
  t.same(batches, [3], 'one batch of three')
  t.same(stored.map((m) => m.content), ['a', 'b', 'c'])
  t.same((await store.listMessages('o', agent.id, { limit: 10 })).map((m) => m.id), stored.map((m) => m.id), 'what each caller got is what is stored')
  await commit.append(message('later'))
  t.same(batches, [3, 1], 'a later turn is a batch of its own')
})

t.test('a failed batch is stored row by row: the bad row fails alone', async (t) => {
  const { store, agent, spy, singles, message } = await setup(t)
  const commit = new GroupCommit(spy)
  const [good, bad, other] = await Promise.allSettled([commit.append(message('good')), commit.append(message('orphan', 'agent-gone')), commit.append(message('other'))])
  t.equal(good.status, 'fulfilled')
  t.equal(bad.status, 'rejected')
  t.equal(other.status, 'fulfilled')
  t.same(singles, ['good', 'orphan', 'other'], 'retried one by one')
  t.same((await store.listMessages('o', agent.id, { limit: 10 })).map((m) => m.content), ['good', 'other'])
})

t.test('a store without appendMessages stores each reply on its own, at once', async (t) => {
  const { spy, singles, message } = await setup(t)
  const commit = new GroupCommit({ appendMessage: spy.appendMessage })
  const stored = await commit.append(message('alone'))
  t.equal(stored.content, 'alone')
  t.same(singles, ['alone'])
})
