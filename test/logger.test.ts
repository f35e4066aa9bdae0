import t from 'tap'
import { pino } from 'pino'
import { timeField } from '../lib/observability/logger.js'

t.test('the time field is pino\'s isoTime, made once per millisecond', async (t) => {
  const ms = Date.UTC(2026, 11, 3, 12, 0, 0, 5)
  t.equal(timeField(ms), ',"time":"2026-12-03T12:00:00.005Z"')
  t.equal(timeField(ms), ',"time":"2026-12-03T12:00:00.005Z"', 'the same millisecond, the same field')
  t.equal(timeField(ms + 1), ',"time":"2026-12-03T12:00:00.006Z"', 'the next one, a new field')
  const shape = /^,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/
  t.match(pino.stdTimeFunctions.isoTime(), shape, 'pino\'s own field has this shape')
  t.match(timeField(Date.now()), shape, 'and so has ours')
})
