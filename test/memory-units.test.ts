import t from 'tap'
import { cosineSimilarity, reciprocalRankFusion } from '../lib/memory/retrieval.js'
import { RuleBasedExtractor } from '../lib/memory/extractor.js'
import { ftsQuery } from '../lib/store/sqlite.js'
import type { Memory } from '../lib/store/store.js'

const mem = (id: string, content: string): Memory => ({
  id, content, organization_id: 'o', agent_id: 'a', user_id: 'u', session_id: null, memory_type: 'Semantic', importance: 0.5, metadata: {}, created_at: '', updated_at: ''
})

t.test('reciprocal rank fusion rewards agreement between rankings', async (t) => {
  // 1/61 + 1/63 > 2/62: a first and a last place beat two middles; ties keep the first list's order.
  t.same(reciprocalRankFusion([['a', 'b', 'c'], ['c', 'b', 'a']]), ['a', 'c', 'b'])
  t.same(reciprocalRankFusion([['x', 'y'], ['y', 'z']]), ['y', 'x', 'z'])
  t.same(reciprocalRankFusion([]), [])
})

t.test('cosine similarity', async (t) => {
  t.equal(cosineSimilarity([1, 0], [1, 0]), 1)
  t.equal(cosineSimilarity([1, 0], [0, 1]), 0)
  t.equal(cosineSimilarity([0, 0], [1, 1]), 0, 'a zero vector is similar to nothing')
  t.ok(Math.abs(cosineSimilarity([1, 2, 3], [2, 4, 6]) - 1) < 1e-12)
})

t.test('free text becomes a safe FTS5 query', async (t) => {
  t.equal(ftsQuery('Green tea, GREEN tea!'), '"green" OR "tea"')
  t.equal(ftsQuery('NEAR(a b) AND "x" OR *'), '"near" OR "a" OR "b" OR "and" OR "x" OR "or"')
  t.equal(ftsQuery('?!* ---'), null)
})

t.test('rule-based extraction: facts about the user, decided against existing memories', async (t) => {
  const x = new RuleBasedExtractor()
  const none = await x.extract({ userMessage: 'Hi, my name is Ada and I love green tea. I live in Paris; I work at Acme. I am going to visit Rome, I plan to learn Go', reply: '', existing: [] })
  t.same(none.map((d) => [d.action, d.content, d.memory_type]), [
    ['ADD', "User's name is Ada", 'Semantic'],
    ['ADD', 'User lives in Paris', 'Semantic'],
    ['ADD', 'User works at Acme', 'Semantic'],
    ['ADD', 'User likes green tea', 'Semantic'],
    ['ADD', 'User plans to visit Rome', 'Episodic'],
    ['ADD', 'User plans to learn Go', 'Episodic']
  ])
  const existing = [mem('m1', "User's name is Ada"), mem('m2', 'User lives in Paris')]
  const again = await x.extract({ userMessage: 'my name is ada. I live in Berlin', reply: '', existing })
  t.same(again.map((d) => [d.action, d.target_id, d.content]), [
    ['NOOP', 'm1', "User's name is ada"],
    ['UPDATE', 'm2', 'User lives in Berlin']
  ])
  t.same(await x.extract({ userMessage: 'remember that my name is Bob', reply: '', existing: [] }), [], 'left to save_memory')
  t.same(await x.extract({ userMessage: 'The weather is nice', reply: '', existing: [] }), [])
})
