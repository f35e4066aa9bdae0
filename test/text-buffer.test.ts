import t from 'tap'
import { TextBuffer } from '../lib/stream/text-buffer.js'

t.test('a reply built token by token reads back exactly, across folds', async (t) => {
  for (const count of [0, 1, 255, 256, 257, 1000]) {
    const buffer = new TextBuffer()
    let expected = ''
    for (let i = 0; i < count; i++) {
      const token = i % 7 === 0 ? `é${i} ` : `w${i} `
      buffer.add(token)
      expected += token
    }
    t.equal(buffer.toString(), expected, `${count} tokens`)
    t.equal(buffer.length, expected.length)
  }
})

t.test('reading it does not change it', async (t) => {
  const buffer = new TextBuffer()
  buffer.add('a')
  t.equal(buffer.toString(), 'a')
  buffer.add('b')
  t.equal(buffer.toString(), 'ab')
})
