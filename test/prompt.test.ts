import t from 'tap'
import { buildPrompt } from '../lib/chat/prompt.js'
import type { Message } from '../lib/store/store.js'

const msg = (role: 'user' | 'assistant', content: string): Message => ({
  id: 'm', organization_id: 'o', agent_id: 'a', user_id: 'u', session_id: 's', role, content, metadata: {}, created_at: ''
})

t.test('system, history within budget (newest kept), then the message', async (t) => {
  const history = [msg('user', 'aaaa'), msg('assistant', 'bbbb'), msg('user', 'cccc'), msg('assistant', 'dddd')]
  t.same(buildPrompt({ system: 'sys', context: '<memories>\n- m\n</memories>', history, message: 'now', historyCharBudget: 8 }), [
    { role: 'system', content: 'sys' },
    { role: 'system', content: '<memories>\n- m\n</memories>' },
    { role: 'user', content: 'cccc' },
    { role: 'assistant', content: 'dddd' },
    { role: 'user', content: 'now' }
  ])
  t.same(buildPrompt({ system: null, context: null, history, message: 'now', historyCharBudget: 0 }), [{ role: 'user', content: 'now' }])
  t.same(buildPrompt({ system: '', context: null, history: [], message: 'x', historyCharBudget: 100 }), [{ role: 'user', content: 'x' }])
})
