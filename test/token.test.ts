import t from 'tap'
import { newResumeToken } from '../lib/stream/token.js'

t.test('resume tokens are 24 random bytes in base64url, never repeated across pool refills', async (t) => {
  const tokens = Array.from({ length: 1000 }, () => newResumeToken())
  t.equal(new Set(tokens).size, tokens.length, 'all distinct')
  t.same(tokens.filter((x) => !/^[A-Za-z0-9_-]{32}$/.test(x) || Buffer.from(x, 'base64url').length !== 24), [], 'each 24 bytes, base64url')
  // Bytes drawn in one fill still differ token to token (no slice handed out twice).
  const bytes = tokens.map((x) => Buffer.from(x, 'base64url').toString('hex'))
  t.equal(new Set(bytes).size, bytes.length)
})
