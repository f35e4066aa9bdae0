// CORS_ORIGINS lets a browser app on another origin call the API: preflights on every route,
// the allowed origin echoed on every answer (event streams and errors included), nothing for others.
import t from 'tap'
import { startApp } from '../helpers/server.js'
import { request } from '../helpers/sse-client.js'
import { resolveOptions, ConfigError } from '../../lib/config.js'

const APP = 'http://app.example:5173'

t.test('preflight on every route, and the headers on streams and errors', async (t) => {
  const { url, token, createAgent, app } = await startApp(t, { corsOrigins: `${APP}, http://other.example` })
  const agentId = await createAgent('org-a')
  for (const { pattern } of app.routes) {
    const path = pattern.replace(':id', agentId)
    const res = await request(url + path, {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, last-event-id' }
    })
    t.equal(res.status, 204, `preflight ${pattern}`)
    t.equal(res.headers['access-control-allow-origin'], APP)
    t.match(res.headers['access-control-allow-methods'], /OPTIONS/)
    for (const h of ['Authorization', 'Content-Type', 'Last-Event-ID', 'Idempotency-Key', 'X-API-Key', 'X-Request-Id']) {
      t.match(res.headers['access-control-allow-headers'], h, `${pattern} allows ${h}`)
    }
    t.equal(res.headers['access-control-max-age'], '600')
  }
  const unknown = await request(`${url}/nope`, { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'GET' } })
  t.equal(unknown.status, 404, 'no route, no preflight')

  const stream = await request(`${url}/api/v1/agents/${agentId}/chat/stream`, {
    method: 'POST',
    headers: { origin: APP, authorization: `Bearer ${token('org-a')}`, 'content-type': 'application/json' },
    body: '{"message":"hi"}'
  })
  t.equal(stream.status, 200)
  t.equal(stream.headers['access-control-allow-origin'], APP, 'the event stream carries it')
  t.equal(stream.headers['access-control-expose-headers'], 'X-Request-Id, Retry-After')
  t.equal(stream.headers.vary, 'Origin, Accept-Encoding')
  t.equal(stream.headers['access-control-allow-credentials'], undefined, 'no credentials unless configured')

  const error = await request(`${url}/api/v1/agents/${agentId}/chat/stream`, { method: 'POST', headers: { origin: APP } })
  t.equal(error.status, 401)
  t.equal(error.headers['access-control-allow-origin'], APP, 'so does an error body')
  t.equal(JSON.parse(error.raw).code, 'UNAUTHORIZED')

  const foreign = await request(`${url}/api/v1/agents/${agentId}/chat/stream`, {
    method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' }
  })
  t.equal(foreign.headers['access-control-allow-origin'], undefined, 'an origin not listed gets no CORS header')
  t.equal(foreign.headers['access-control-allow-methods'], undefined)
  t.equal(foreign.headers.vary, 'Origin')
})

t.test('without CORS_ORIGINS no CORS header at all; * allows any origin; credentials only with a list', async (t) => {
  const plain = await startApp(t)
  const res = await request(`${plain.url}/healthz`, { headers: { origin: APP } })
  t.equal(res.headers['access-control-allow-origin'], undefined)
  t.equal(res.headers.vary, undefined)

  const any = await startApp(t, { corsOrigins: '*' })
  const star = await request(`${any.url}/healthz`, { headers: { origin: 'http://anything.example' } })
  t.equal(star.headers['access-control-allow-origin'], 'http://anything.example')

  const creds = await startApp(t, { corsOrigins: APP, corsCredentials: 'on' })
  const withCreds = await request(`${creds.url}/healthz`, { headers: { origin: APP } })
  t.equal(withCreds.headers['access-control-allow-credentials'], 'true')

  t.throws(() => resolveOptions({ corsOrigins: '*', corsCredentials: 'on' }), ConfigError)
  t.throws(() => resolveOptions({ corsCredentials: 'on' }), /corsCredentials on needs corsOrigins/)
})
