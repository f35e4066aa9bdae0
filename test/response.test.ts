import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { AppResponse } from '../lib/http/response.js'

/** A node:http server with the project's response class; `route` answers every request. */
async function serve (t: Tap.Test, route: (res: AppResponse) => void): Promise<string> {
  const server = http.createServer({ ServerResponse: AppResponse }, (_req, res) => {
    res.carry('X-Request-Id', 'req-1')
    res.vary('Origin')
    route(res)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
}

async function head (url: string): Promise<{ status: number, message: string, headers: http.IncomingHttpHeaders, body: string }> {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(url, resolve).on('error', reject))
  let body = ''
  for await (const chunk of res) body += String(chunk)
  return { status: res.statusCode as number, message: res.statusMessage as string, headers: res.headers, body }
}

t.test('carried headers join the headers writeHead is given, and Vary gathers its tokens', async (t) => {
  const url = await serve(t, (res) => {
    res.vary('Accept-Encoding')
    res.writeHead(200, { 'Content-Type': 'text/plain' })
    res.end('ok')
  })
  const got = await head(url)
  t.equal(got.status, 200)
  t.equal(got.headers['x-request-id'], 'req-1')
  t.equal(got.headers.vary, 'Origin, Accept-Encoding')
  t.equal(got.headers['content-type'], 'text/plain')
  t.equal(got.body, 'ok')
})

t.test('a response ended without writeHead still carries them (Node calls writeHead itself)', async (t) => {
  const url = await serve(t, (res) => {
    res.statusCode = 404
    res.end()
  })
  const got = await head(url)
  t.equal(got.status, 404)
  t.equal(got.headers['x-request-id'], 'req-1')
  t.equal(got.headers.vary, 'Origin')
})

t.test('a reason phrase or headers as a list: carried headers still go out, beside those given', async (t) => {
  const withReason = await head(await serve(t, (res) => {
    res.writeHead(201, 'Made', { 'X-Given': 'yes' })
    res.end()
  }))
  t.equal(withReason.status, 201)
  t.equal(withReason.message, 'Made')
  t.same([withReason.headers['x-request-id'], withReason.headers.vary, withReason.headers['x-given']], ['req-1', 'Origin', 'yes'])
  const asList = await head(await serve(t, (res) => {
    res.writeHead(202, ['X-Given', 'list'])
    res.end()
  }))
  t.equal(asList.status, 202)
  t.same([asList.headers['x-request-id'], asList.headers.vary, asList.headers['x-given']], ['req-1', 'Origin', 'list'])
})

t.test('once the head is written, carrying a header changes nothing and does not throw', async (t) => {
  const url = await serve(t, (res) => {
    res.writeHead(200)
    res.carry('X-Late', 'no')
    res.vary('Late')
    res.end('body')
  })
  const got = await head(url)
  t.equal(got.headers['x-late'], undefined)
  t.equal(got.headers.vary, 'Origin')
  t.equal(got.body, 'body')
})
